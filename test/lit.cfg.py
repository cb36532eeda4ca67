# -*- Python -*-
import os
import subprocess
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "LINA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.lina_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]

config.substitutions.append(("%lina_src", config.lina_src_root))
config.environment["FILECHECK_OPTS"] = "-enable-var-scope"
if config.lina_have_mpi:
    config.available_features.add("mpi")
# Tests outside test/runtime and test/infer that run lina-run (the plan
# loader's dumps, test/Integration) say REQUIRES: lina-run.
if os.path.exists(os.path.join(config.lina_tools_dir, "lina-run")):
    config.available_features.add("lina-run")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.lina_tools_dir, config.llvm_tools_dir]
tools = ["lina-opt", "lina-translate", "lina-import", "lina-run", "lina-profile"]
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore") for t in tools], tool_dirs)

# %validate_plan: scripts/validate_plan.py, which checks plans against
# docs/plan.schema.json. It needs the jsonschema package (python3-jsonschema,
# installed by scripts/setup.sh): lit's Python if it has it, else Debian's.
# Without either the checker fails, saying what to install.
def python_with_jsonschema():
    for python in [sys.executable, "/usr/bin/python3"]:
        if os.path.exists(python) and subprocess.call(
                [python, "-c", "import jsonschema"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
            return python
    return sys.executable


config.substitutions.append(
    ("%validate_plan", '"%s" "%s"' % (
        python_with_jsonschema(),
        os.path.join(config.lina_src_root, "scripts", "validate_plan.py"))))

# mpirun as root and with more ranks than cores (CI machines have 2 cores).
for var, value in [("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                   ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                   ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
                   ("OPENBLAS_NUM_THREADS", "1")]:
    config.environment[var] = value
