"""Checks a `lina-run --json` results file.

usage: check_results.py FILE CHECK...

Every file must have the keys all results files share (format, versions,
command, mode, plan, world size, backend). Each CHECK is a dotted key path:
  KEY          a finite number
  KEY?         a finite number or null
  KEY[]        a non-empty list of finite numbers
  KEY=VALUE    a string or a boolean equal to VALUE ("true", "false")
Prints one line per CHECK with its value, or the problem and exits 1.
"""
import json
import math
import sys


def lookup(results, path):
    value = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"missing key '{path}'")
        value = value[part]
    return value


def is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def check(results, spec):
    if "=" in spec:
        path, want = spec.split("=", 1)
        value = lookup(results, path)
        if isinstance(value, bool):
            ok = want == ("true" if value else "false")
        else:
            ok = value == want
        return ok, path, value
    if spec.endswith("[]"):
        path = spec[:-2]
        value = lookup(results, path)
        ok = (isinstance(value, list) and value
              and all(is_number(v) for v in value))
        return ok, path, f"{len(value)} numbers" if ok else value
    if spec.endswith("?"):
        path = spec[:-1]
        value = lookup(results, path)
        return value is None or is_number(value), path, value
    value = lookup(results, spec)
    return is_number(value), spec, "number" if is_number(value) else value


def main():
    with open(sys.argv[1]) as f:
        results = json.load(f)
    common = ["format=lina-run-results", "format_version", "world_size"]
    failed = False
    for spec in common + sys.argv[2:]:
        try:
            ok, path, shown = check(results, spec)
        except KeyError as e:
            ok, path, shown = False, spec, e.args[0]
        print(f"{'ok' if ok else 'BAD'}: {path}: {shown}")
        failed = failed or not ok
    for key, kind in [("versions", dict), ("command", list),
                      ("command_line", str), ("mode", str), ("plan", str),
                      ("backend", str)]:
        if not isinstance(results.get(key), kind):
            print(f"BAD: {key}: {results.get(key)!r}")
            failed = True
    if not isinstance(results.get("versions", {}).get("lina"), str):
        print("BAD: versions.lina")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
