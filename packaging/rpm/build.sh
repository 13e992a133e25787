#!/usr/bin/env bash
# Builds the .rpm from a staged tree (packaging/stage.sh) with Debian's rpmbuild.
#   packaging/rpm/build.sh STAGE_DIR OUT_DIR VERSION
set -euo pipefail
stage=$(realpath "$1") out=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
mkdir -p "$out"
rpmbuild --quiet --define "_topdir $top" --define "stage $stage" --define "version $version" \
  --define "_build_id_links none" -bb "$here/gadgetd.spec"
cp "$top"/RPMS/*/gadgetd-"$version"-1.*.rpm "$out/"
ls "$out"/gadgetd-"$version"-1.*.rpm
