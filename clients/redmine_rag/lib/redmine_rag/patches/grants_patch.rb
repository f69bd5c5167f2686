# frozen_string_literal: true

module RedmineRag
  module Patches
    # Included into what a search filter is built from (memberships, roles,
    # projects, modules, users and groups): any commit of one of them makes the
    # cached filters of this process stale (see Grants).
    module GrantsPatch
      extend ActiveSupport::Concern

      included do
        after_commit { RedmineRag::Grants.changed! }
      end
    end
  end
end
