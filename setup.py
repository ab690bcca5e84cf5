# `pip install .` builds the extension convlab._C by driving CMake (the pybind11 cmake_example pattern); this
# is the one build path: scripts/dev_build.sh runs `setup.py build_ext` too.
# Environment: CONVLAB_CUDA=AUTO|ON|OFF, CONVLAB_CUDA_ARCH, CONVLAB_PORTABLE=1, CONVLAB_SANITIZE=address,...,
# CONVLAB_BUILD_TYPE (default Release), CONVLAB_CMAKE_ARGS (more CMake arguments, appended last so they win).
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
VERSION = runpy.run_path(str(ROOT / "python" / "convlab" / "_version.py"))["__version__"]


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_dir = Path(self.build_temp).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('CONVLAB_BUILD_TYPE', 'Release')}",
            f"-DCONVLAB_CUDA={os.environ.get('CONVLAB_CUDA', 'AUTO')}",
        ]
        for env, var in [("CONVLAB_CUDA_ARCH", "CONVLAB_CUDA_ARCH"), ("CONVLAB_SANITIZE", "CONVLAB_SANITIZE")]:
            if os.environ.get(env):
                args.append(f"-D{var}={os.environ[env]}")
        if os.environ.get("CONVLAB_PORTABLE", "0") not in ("", "0"):
            args.append("-DCONVLAB_PORTABLE=ON")
        if shutil.which("ninja"):
            args.append("-GNinja")
        args += shlex.split(os.environ.get("CONVLAB_CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        print(f"convlab: building {ext.name} with CMake in {build_dir} ({jobs} jobs; a few minutes)", flush=True)
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs], check=True)


setup(
    version=VERSION,
    packages=find_packages("python"),
    package_dir={"": "python"},
    package_data={"convlab.bench": ["suites/*.json"]},  # the benchmark suites live there, nowhere else
    ext_modules=[CMakeExtension("convlab._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
