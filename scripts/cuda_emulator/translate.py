"""Copies src/cuda to DST as plain C++ for the emulator: `kernel<<<grid, block>>>(args)` becomes
`EMU_LAUNCH(grid, block, kernel)(args)` and .cu files become .cpp files (unchanged files are not rewritten,
so rebuilds stay incremental)."""
import pathlib
import re
import sys

src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for f in sorted(src.iterdir()):
    text = f.read_text()
    if f.suffix in (".cu", ".cuh"):
        text = re.sub(r"(\w+(?:<[^<>;]*>)?)<<<(.*?),\s*(\w+)>>>\(", r"EMU_LAUNCH(\2, \3, \1)(", text)
        text = text.replace("#pragma unroll", "")
    out = dst / (f.stem + ".cpp" if f.suffix == ".cu" else f.name)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
