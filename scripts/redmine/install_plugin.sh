#!/usr/bin/env bash
# Installs the redmine_rag plugin into an existing Redmine or RedMica:
#   scripts/redmine/install_plugin.sh /path/to/redmine
# Copies clients/redmine_rag to plugins/redmine_rag with the ragd-client gem
# vendored (plugins/redmine_rag/vendor/ragd-client), then says what is left to
# do: the bundle, the plugin's migration, a restart, the settings, a reindex.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
target=${1:?usage: install_plugin.sh /path/to/redmine}
[ -f "$target/config/environment.rb" ] && [ -d "$target/plugins" ] || { echo "$target: not a Redmine directory" >&2; exit 1; }
rm_copy_plugin "$target/plugins/redmine_rag"
cat <<MSG
Installed $target/plugins/redmine_rag (ragd-client gem vendored). Then, in $target:
  bundle install --local                       # grpc from Debian's ruby-grpc (or: bundle install)
  RAILS_ENV=production bundle exec rake redmine:plugins:migrate
  restart Redmine; Administration > Plugins > ragd semantic search: set the ragd address
  RAILS_ENV=production bundle exec rake redmine_rag:reindex
MSG
