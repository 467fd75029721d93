#!/usr/bin/env sh
# Re-vendor the UI's front-end files from the npm registry at the versions pinned in web/package-lock.json.
# Run it after changing web/package.json; commit web/package*.json and src/rapport/web/static/vendor/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
vendor="$root/src/rapport/web/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/web/package.json" "$root/web/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
mkdir -p "$vendor"
cp "$work/node_modules/htmx.org/dist/htmx.min.js" "$vendor/htmx.min.js"
cp "$work/node_modules/chart.js/dist/chart.umd.min.js" "$vendor/chart.umd.min.js"
cp "$work/node_modules/htmx.org/LICENSE" "$vendor/LICENSE.htmx.txt"
cp "$work/node_modules/chart.js/LICENSE.md" "$vendor/LICENSE.chartjs.txt"
{
  echo "# Vendored by scripts/vendor-static.sh from the npm registry; pinned in web/package-lock.json."
  echo "# file  package@version  sha256"
  for pair in "htmx.min.js htmx.org" "chart.umd.min.js chart.js"; do
    set -- $pair
    version=$(node -p "require('$work/node_modules/$2/package.json').version")
    sum=$(sha256sum "$vendor/$1" | cut -d' ' -f1)
    echo "$1  $2@$version  $sum"
  done
} > "$vendor/VERSIONS.txt"
cat "$vendor/VERSIONS.txt"
