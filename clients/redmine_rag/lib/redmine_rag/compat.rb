# frozen_string_literal: true

module RedmineRag
  # What the plugin builds vs what the installed ragd-client gem knows. The
  # documents carry the permission grants' fields (tracker_id, owner_ids,
  # private_note); a gem without them gets viewer_ids instead.
  module Compat
    module_function

    def grants? = Ragd::Document.members.include?(:owner_ids)

    def document(doc)
      return doc if grants?

      # The older filter knows one private flag: a private note is private.
      legacy = doc.except(:tracker_id, :owner_ids, :private_note)
      legacy.merge(is_private: doc[:is_private] || doc[:private_note] ? true : false, viewer_ids: [])
    end
  end
end
