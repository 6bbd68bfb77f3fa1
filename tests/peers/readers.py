"""Reads a dotenv and a properties file back the way applications do, for the round-trip tests
of `files` (crates/core/tests/readers.rs): python-dotenv and bash's `source` for the dotenv file,
jproperties (Java's Properties.load rules) for the properties file. Prints one JSON object:
{"dotenv": {...}, "bash": {...}, "properties": {...}}.

usage: readers.py DOTENV_FILE PROPERTIES_FILE
"""
import json
import os
import subprocess
import sys

import dotenv
import jproperties


def bash_source(path):
    # `set -a` exports what the file assigns; the child prints its environment as JSON, so
    # the values come back exactly (newlines included).
    script = 'set -a; source "$1"; exec "$2" -c "import json, os; print(json.dumps(dict(os.environ)))"'
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script, "bash", path, sys.executable],
        env=clean, check=True, capture_output=True, text=True,
    ).stdout
    values = json.loads(out)
    # What bash and the interpreter set themselves, not the file.
    for inherited in list(clean) + ["PWD", "SHLVL", "_", "OLDPWD", "LC_CTYPE"]:
        values.pop(inherited, None)
    return values


def properties(path):
    found = jproperties.Properties()
    with open(path, "rb") as f:
        found.load(f, "utf-8")
    return {key: found[key].data for key in found}


def main():
    dotenv_path, properties_path = sys.argv[1], sys.argv[2]
    print(json.dumps({
        "dotenv": dotenv.dotenv_values(dotenv_path),
        "bash": bash_source(dotenv_path),
        "properties": properties(properties_path),
    }))


if __name__ == "__main__":
    main()
