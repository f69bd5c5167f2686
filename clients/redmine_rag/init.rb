# frozen_string_literal: true

# ragd semantic search for Redmine 5.x and RedMica 2.x/3.x. Redmine runs this
# file inside Rails' to_prepare (lib/ and app/ are Zeitwerk roots by then).
Redmine::Plugin.register :redmine_rag do
  name 'ragd semantic search'
  author 'ragd contributors'
  description "Redmine's search page, similar issues and duplicate suggestions answered by the ragd " \
              'retrieval daemon, within each user\'s permissions'
  version RedmineRag::VERSION
  url 'https://github.com/ragd/ragd'
  requires_redmine version_or_higher: '5.0.0'

  settings default: RedmineRag::Settings::DEFAULTS, partial: 'settings/redmine_rag'
  menu :admin_menu, :redmine_rag, { controller: 'redmine_rag/admin', action: 'show' },
       caption: :label_redmine_rag_status, html: { class: 'icon icon-search' }
end

RedmineRag::Patches.apply
