#!/usr/bin/env python3
# ===- validate_plan.py - Check plans against docs/plan.schema.json --------===#
#
# Part of the Lina project.
#
# Validates Lina plans (docs/PLAN.md) against the JSON Schema of the plan
# format, docs/plan.schema.json:
#
#   scripts/validate_plan.py plan.json [more.json ...]
#   lina-translate --lina-to-plan m.mlir | scripts/validate_plan.py -
#
# Prints "PATH: ok" for a valid plan; for an invalid one, one line per
# problem, "PATH: FIELD: message" with FIELD the JSON path of the offending
# value (e.g. ops[3].attrs.capacity), and exits with status 1.
#
# Like the runtime's loader, and unlike plain JSON Schema, an integer field
# refuses 2.0, and NaN or Infinity are not JSON. --no-extra-fields also
# refuses fields the schema does not name (the loader ignores them); the
# tests check every plan the emitter writes that way.
#
# Needs the jsonschema package (Debian: python3-jsonschema, 4.10 or later).
# ===----------------------------------------------------------------------===#

import argparse
import copy
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("validate_plan.py: needs the Python package jsonschema "
             "(Debian: apt-get install python3-jsonschema)")

DEFAULT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              os.pardir, "docs", "plan.schema.json")
MAX_ERRORS = 20


def strict_integer(checker, instance):
    # JSON Schema counts 2.0 as an integer; the loader (and json.loads'
    # distinction between 2 and 2.0) does not.
    return isinstance(instance, int) and not isinstance(instance, bool)


def close_objects(schema):
    """Forbids unnamed fields in the objects of the plan: the top level and
    every $defs entry of type object. (The schema declares each kind of
    object there, with all its fields; the if/then parts only narrow
    fields declared there.)"""
    schema = copy.deepcopy(schema)
    for s in [schema] + list(schema.get("$defs", {}).values()):
        if s.get("type") == "object" and "additionalProperties" not in s:
            s["additionalProperties"] = False
    return schema


def make_validator(schema):
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    checker = base.TYPE_CHECKER.redefine("integer", strict_integer)
    cls = jsonschema.validators.extend(base, type_checker=checker)
    return cls(schema)


def field_path(error):
    out = ""
    for part in error.absolute_path:
        out += "[%d]" % part if isinstance(part, int) else (
            ("." if out else "") + str(part))
    return out or "(top level)"


def no_constants(name):
    raise ValueError("%s is not JSON" % name)


def check(path, validator):
    try:
        if path == "-":
            plan = json.load(sys.stdin, parse_constant=no_constants)
        else:
            with open(path) as f:
                plan = json.load(f, parse_constant=no_constants)
    except (OSError, ValueError) as e:
        print("%s: cannot read the plan: %s" % (path, e))
        return False
    # In the order of the fields in the plan: ops[2] before ops[10].
    errors = sorted(validator.iter_errors(plan), key=lambda e: [
        (0, p, "") if isinstance(p, int) else (1, 0, p)
        for p in e.absolute_path])
    for e in errors[:MAX_ERRORS]:
        print("%s: %s: %s" % (path, field_path(e), e.message))
    if len(errors) > MAX_ERRORS:
        print("%s: ... and %d more" % (path, len(errors) - MAX_ERRORS))
    if not errors:
        print("%s: ok" % path)
    return not errors


def main():
    ap = argparse.ArgumentParser(
        description="Validate Lina plans against docs/plan.schema.json.")
    ap.add_argument("plans", nargs="+", metavar="PLAN",
                    help="plan files ('-' reads standard input)")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA,
                    help="the schema (default: docs/plan.schema.json)")
    ap.add_argument("--no-extra-fields", action="store_true",
                    help="refuse fields the schema does not name")
    a = ap.parse_args()
    with open(a.schema) as f:
        schema = json.load(f)
    if a.no_extra_fields:
        schema = close_objects(schema)
    validator = make_validator(schema)
    ok = True
    for path in a.plans:
        ok = check(path, validator) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
