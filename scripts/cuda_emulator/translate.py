"""Copies one file of src/cuda to OUT as plain C++ for the emulator (cuda_runtime.h beside this script):
`kernel<<<grid, block>>>(args)` becomes `EMU_LAUNCH(grid, block, kernel)(args)` and `#pragma unroll` lines
go (g++ does not know them). A #line directive and unchanged line numbers make compiler messages, sanitizer
reports and gcov point at the .cu file itself.
Usage: python translate.py IN OUT (CMake runs it for every file of src/cuda: scripts/cuda_emulator/emulator.cmake)."""
import pathlib
import re
import sys

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
text = src.read_text()
text = re.sub(r"(\w+(?:<[^<>;]*>)?)<<<(.*?),\s*(\w+)>>>\(", r"EMU_LAUNCH(\2, \3, \1)(", text)
text = re.sub(r"^[ \t]*#pragma unroll.*$", "", text, flags=re.M)
text = f'#line 1 "{src.resolve()}"\n' + text
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(text)
