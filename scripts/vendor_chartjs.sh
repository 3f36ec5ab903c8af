#!/usr/bin/env bash
# Re-fetch the pinned Chart.js into analytics/static/analytics/vendor/ (no CDN at run time).
#
#   scripts/vendor_chartjs.sh            # the pinned version
#   CHARTJS_VERSION=4.6.1 scripts/vendor_chartjs.sh
#
# `npm pack` downloads the package tarball from the configured npm registry and
# checks it against the registry's integrity hash. Only the UMD build and the
# licence are kept. The build's last line, a `//# sourceMappingURL=` comment,
# is dropped: Django's manifest storage would otherwise demand the 1 MB source
# map during collectstatic. Bump the version here and in vendor/README.md together.
set -euo pipefail

CHARTJS_VERSION="${CHARTJS_VERSION:-4.6.1}"
cd "$(dirname "$0")/.."
dest=analytics/static/analytics/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "error: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
(cd "$work" && npm pack "chart.js@${CHARTJS_VERSION}" --silent >/dev/null && tar -xzf "chart.js-${CHARTJS_VERSION}.tgz")

packed_version="$(node -p "require('$work/package/package.json').version")"
[[ "$packed_version" == "$CHARTJS_VERSION" ]] || { echo "error: got chart.js $packed_version" >&2; exit 1; }

mkdir -p "$dest"
grep -v '^//# sourceMappingURL=' "$work/package/dist/chart.umd.min.js" >"$dest/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$dest/LICENSE.md"
echo "chart.js ${CHARTJS_VERSION} -> $dest/chart.umd.min.js"
sha256sum "$dest/chart.umd.min.js"
