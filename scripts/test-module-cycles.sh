#!/usr/bin/env bash
# The module-circle check itself: it must find a circle planted between two top-level modules,
# one between two files of a directory module, and one hidden after an indented
# `#[cfg(test)]`; and pass a tree without one (a test module may import anything).
set -euo pipefail
cd "$(dirname "$0")/.."
check=scripts/check-module-cycles.py
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT

plant() { # file, contents
  mkdir -p "$(dirname "$tree/$1")"
  printf '%s\n' "$2" > "$tree/$1"
}
expect_circle() { # what
  if python3 "$check" "$tree" 2>/dev/null; then
    echo "check-module-cycles.py missed $1" >&2
    exit 1
  fi
}

plant crates/x/src/lib.rs 'mod a; mod b; mod params;'
plant crates/x/src/a.rs 'use crate::b::B;'
plant crates/x/src/b.rs 'pub struct B;
#[cfg(test)]
mod tests { use crate::a; }'
plant crates/x/src/params/mod.rs 'mod one; mod two;'
plant crates/x/src/params/one.rs 'use super::two::Two;'
plant crates/x/src/params/two.rs 'pub struct Two;'
python3 "$check" "$tree" >/dev/null

plant crates/x/src/b.rs 'pub struct B;
impl B {
    #[cfg(test)]
    fn only_in_tests() {}
    fn uses_a() { crate::a::f(); }
}'
expect_circle "a circle after an indented #[cfg(test)]"

plant crates/x/src/b.rs 'pub struct B;'
plant crates/x/src/params/two.rs 'pub struct Two; use crate::params::one::One;'
expect_circle "a circle between two files of params/"
echo "module-circle check: finds the planted circles"
