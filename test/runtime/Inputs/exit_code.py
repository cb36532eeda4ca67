"""Runs a command and prints its exit code after its output.

usage: exit_code.py COMMAND [ARG...]
"""
import subprocess
import sys

result = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
sys.stdout.write(result.stdout.decode())
print(f"exit code {result.returncode}")
