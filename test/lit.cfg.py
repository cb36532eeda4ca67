# -*- Python -*-
import os

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

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.lina_tools_dir, config.llvm_tools_dir]
tools = ["lina-opt", "lina-translate", "lina-import", "lina-run", "lina-profile"]
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore") for t in tools], tool_dirs)

# mpirun as root and with more ranks than cores (CI machines have 2 cores).
for var, value in [("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                   ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                   ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
                   ("OPENBLAS_NUM_THREADS", "1")]:
    config.environment[var] = value
