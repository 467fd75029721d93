#!/usr/bin/env sh
# Re-vendor the UI's front-end files from the npm registry at the versions pinned in web/package-lock.json,
# and analytics.js (Segment's browser SDK) for tests/web/test_browser_analytics_js.py.
# Run it after changing web/package.json; commit web/package*.json, src/rapport/web/static/vendor/ and
# tests/data/vendor/.
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

tests_vendor="$root/tests/data/vendor"
mkdir -p "$tests_vendor"
cp "$work/node_modules/@segment/analytics-next/dist/umd/index.js" "$tests_vendor/analytics-next.umd.js"
cp "$work/node_modules/@segment/analytics-next/LICENSE.MD" "$tests_vendor/LICENSE.analytics-next.md"
{
  echo "# Vendored by scripts/vendor-static.sh from the npm registry; pinned in web/package-lock.json."
  echo "# file  package@version  sha256"
  version=$(node -p "require('$work/node_modules/@segment/analytics-next/package.json').version")
  sum=$(sha256sum "$tests_vendor/analytics-next.umd.js" | cut -d' ' -f1)
  echo "analytics-next.umd.js  @segment/analytics-next@$version  $sum"
} > "$tests_vendor/VERSIONS.txt"
cat "$tests_vendor/VERSIONS.txt"
