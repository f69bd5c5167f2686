#!/bin/sh
# The image's model lives in /opt/ragd/models; the data dir is a volume that may be empty
# (first start) or hidden by a mount: point DATA_DIR/models at the image's copy.
set -eu
data=${RAGD_DATA_DIR:-/var/lib/ragd}
mkdir -p "$data"
[ -e "$data/models" ] || ln -s /opt/ragd/models "$data/models"
exec ragd "$@"
