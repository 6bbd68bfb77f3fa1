#!/usr/bin/env python3
"""The commands the quickstarts and migration guides give a user work as pasted.

For each page, in reading order (shell blocks and inline `code` alike):
- every shell variable a command uses is set earlier on the same page (`export A=...`, `A=...`,
  `for A in`), so a reader who follows the page top to bottom never runs a command with an
  empty `$CLUSTER`;
- every `helm install`/`helm upgrade` of this chart renders with exactly the values the page
  sets (`helm template` against the chart and its schema, variables replaced by sample
  values), so a renamed or mistyped value fails here;
- every `helm install`/`helm upgrade` of another chart from a repository pins `--version`, and
  its repository alias was added (`helm repo add`) earlier on the page.

A variable set in only some of a page's alternative paths (list items `- a)`, `- b)`, or
headings `### (a)`, `### (b)`) counts as set after them only when every path sets it: a
reader who took path a never ran path b's `export`.

Usage: check-docs.py HELM [PAGE ...]   (run by scripts/test-chart.sh)
"""
import re
import shlex
import subprocess
import sys

# Every page with commands a user pastes: the README and every page under docs/ (pages without
# shell blocks pass trivially). Inline `code` with a variable counts as a command on the
# step-by-step pages only; elsewhere inline code shows syntax, not steps.
STEP_BY_STEP = {
    "docs/quickstart-eks.md",
    "docs/quickstart-aks.md",
    "docs/migration-from-aws.md",
    "docs/migration-from-azure.md",
    "docs/quickstart-gke.md",
    "docs/migration-from-gcp.md",
}


def all_pages():
    import glob
    return ["README.md"] + sorted(glob.glob("docs/*.md"))
CHART = "charts/csi-secrets-provider"
OUR_CHARTS = {"./charts/csi-secrets-provider", "charts/csi-secrets-provider",
              "oci://ghcr.io/csi-secrets-provider/charts/csi-secrets-provider"}
# Set by the shell or the system, not by the reader.
ENVIRONMENT = {"PWD", "HOME", "PATH", "USER"}
# What the variables stand for when a command is rendered.
SAMPLES = {
    "REGION": "us-east-1",
    "NS": "kube-system",
    "PROVIDER_DIR": "/var/run/secrets-store-csi-providers",
    "REPO": "123456789012.dkr.ecr.us-east-1.amazonaws.com/csi-secrets-provider",
    "ACCOUNT": "123456789012",
}
# Options of helm install/upgrade that take a value (the rest are flags).
HELM_VALUED = {"-n", "--namespace", "--version", "--set", "--set-string", "--set-json",
               "--set-file", "-f", "--values", "--timeout", "--kube-context"}


ALTERNATIVE_ITEM = re.compile(r"^(\s*)- \(?([a-z])\) ")
ALTERNATIVE_HEADING = re.compile(r"^(#+) \(([a-z])\) ")
HEADING = re.compile(r"^(#+) ")


def alternatives(page):
    """For each line number, the alternative path it is in: (group, letter), or None."""
    out = {}
    group, letter, kind, level = 0, None, None, None
    for number, line in enumerate(page.splitlines(), 1):
        item, heading, any_heading = ALTERNATIVE_ITEM.match(line), ALTERNATIVE_HEADING.match(line), HEADING.match(line)
        if item and (kind != "item" or len(item.group(1)) == level):
            if kind != "item":
                group += 1
            kind, level, letter = "item", len(item.group(1)), item.group(2)
        elif heading and (kind != "heading" or len(heading.group(1)) == level):
            if kind != "heading":
                group += 1
            kind, level, letter = "heading", len(heading.group(1)), heading.group(2)
        elif kind == "item" and line.strip() and not line.startswith(" " * (level + 1)) and not line.lstrip().startswith("```"):
            kind, letter = None, None
        elif kind == "heading" and any_heading and len(any_heading.group(1)) <= level:
            kind, letter = None, None
        out[number] = (group, letter) if letter else None
    return out


def commands(page, inline=True):
    """(line number, command) in reading order: each command of a ```sh block (continuation
    lines joined, comments dropped) and each inline `code` span outside blocks."""
    out = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(page.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_block = stripped in ("```sh", "```bash") and not in_block
            continue
        if in_block:
            text = strip_comment(stripped)
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            if text.endswith("|") or text.endswith("&&") or open_quote(pending + text):
                pending += text + " "
                continue
            command = (pending + text).strip()
            pending = ""
            if command:
                out.append((start, command))
        elif inline:
            for span in re.findall(r"`([^`]+)`", line):
                if "$" in span:
                    out.append((number, span))
    return out


def open_quote(text):
    """Whether `text` ends inside a quoted string (a command going on on the next line)."""
    quote = None
    escaped = False
    for c in text:
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
    return quote is not None


def strip_comment(line):
    """The line without a trailing `# comment` (a # outside quotes, after a space)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line


def used_variables(command):
    """Names used as $NAME or ${NAME...} outside single quotes (and not escaped)."""
    names, quote, i = [], None, 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 1
        elif c == "'" and quote is None:
            quote = "'"
        elif c == '"':
            quote = None if quote == '"' else '"'
        elif c == "$":
            match = re.match(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))", command[i:])
            if match:
                names.append(match.group(1) or match.group(2))
        i += 1
    return names


def defined_variables(command):
    """Names a command sets: `export A=.. B=..`, leading `A=..` assignments, `for A in`."""
    names = []
    for part in re.split(r"&&|;|\|", command):
        words = part.strip().split()
        if not words:
            continue
        while words and words[0] in ("do", "then", "else", "{"):
            words = words[1:]
        if words and words[0] == "export":
            words = words[1:]
        if words and words[0] == "for" and len(words) > 1:
            names.append(words[1])
            continue
        for word in words:
            match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", word)
            if not match:
                break
            names.append(match.group(1))
    return names


def substitute(command):
    def value(match):
        name = match.group(1) or match.group(2)
        return SAMPLES.get(name, "sample-" + name.lower())
    # A command's output: a digest where one is read, else a word.
    command = re.sub(r"\$\(([^()]*)\)",
                     lambda m: "sha256:" + "0" * 64 if "digest" in m.group(1) else "sample", command)
    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))", value, command)


def check_helm(helm, path, number, command, repos, problems):
    if not command.startswith("helm "):
        return
    try:
        words = shlex.split(substitute(command))
    except ValueError as e:
        problems.append(f"{path}:{number}: cannot read the command ({e}): {command}")
        return
    if len(words) < 4 or words[0] != "helm" or words[1] not in ("install", "upgrade"):
        return
    positional, options, i = [], [], 2
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            if "=" not in word and word in HELM_VALUED and i + 1 < len(words):
                options.append((word, words[i + 1]))
                i += 2
                continue
            options.append((word.split("=", 1)[0], word.split("=", 1)[1] if "=" in word else None))
        else:
            positional.append(word)
        i += 1
    if len(positional) < 2:
        problems.append(f"{path}:{number}: cannot read the release and chart of: {command}")
        return
    chart = positional[1]
    if chart in OUR_CHARTS:
        args = [helm, "template", "docs-check", CHART]
        for option, value in options:
            if option in ("--set", "--set-string", "--set-json", "-n", "--namespace"):
                args += [option, value]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            problems.append(f"{path}:{number}: this chart does not render with the page's values: "
                            f"{result.stderr.strip()}\n    {command}")
        return
    if chart.startswith("oci://") or "/" not in chart:
        return
    if not any(option == "--version" for option, _ in options):
        problems.append(f"{path}:{number}: {chart} without --version (a plain upgrade moves the "
                        f"chart and its bundled driver): {command}")
    alias = chart.split("/", 1)[0]
    if alias not in repos:
        problems.append(f"{path}:{number}: the repository {alias} is used before `helm repo add {alias}`")


def check_page(helm, path, problems):
    with open(path, encoding="utf-8") as f:
        page = f.read()
    defined = set(ENVIRONMENT)
    repos = set()
    paths = alternatives(page)
    # The alternative paths of the group being read: letter -> variables that path set.
    group, branches = None, {}

    def close_group():
        nonlocal group, branches
        if branches:
            defined.update(set.intersection(*branches.values()))
        group, branches = None, {}

    for number, command in commands(page, inline=path in STEP_BY_STEP):
        where = paths.get(number)
        if where is None or where[0] != group:
            close_group()
        if where is not None:
            group = where[0]
            branches.setdefault(where[1], set())
        visible = defined | (branches[where[1]] if where else set())
        here = set(defined_variables(command))
        for name in used_variables(command):
            if name not in visible and name not in here:
                problems.append(f"{path}:{number}: ${name} is used before the page sets it"
                                f"{' on every path' if name in set().union(*branches.values(), *[set()]) else ''}: {command}")
        if where is not None:
            branches[where[1]].update(here)
        else:
            defined.update(here)
        match = re.match(r"helm repo add (\S+)", command)
        if match:
            repos.add(match.group(1))
        check_helm(helm, path, number, command, repos, problems)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    helm = sys.argv[1]
    pages = sys.argv[2:] or all_pages()
    problems = []
    for path in pages:
        check_page(helm, path, problems)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(f"docs: {len(problems)} problem(s) in commands a user would paste")
    print(f"docs: every variable set before use and every helm value renders ({len(pages)} pages)")


if __name__ == "__main__":
    main()
