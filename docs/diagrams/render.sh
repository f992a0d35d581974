#!/usr/bin/env bash
# Renders every docs/diagrams/*.dot to the .svg beside it (committed, so
# that neither readers nor CI need graphviz). Run after editing a .dot:
#   docs/diagrams/render.sh        (needs graphviz: apt-get install graphviz)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v dot >/dev/null; then
  echo "render.sh: graphviz's dot is missing (apt-get install graphviz)" >&2
  exit 1
fi
for source in *.dot; do
  dot -Tsvg "$source" -o "${source%.dot}.svg"
  echo "rendered ${source%.dot}.svg"
done
