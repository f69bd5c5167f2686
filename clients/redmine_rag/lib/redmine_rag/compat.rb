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

      doc = doc.except(:tracker_id, :owner_ids, :private_note)
      doc.merge(viewer_ids: [])
    end
  end
end
