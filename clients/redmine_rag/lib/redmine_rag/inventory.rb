# frozen_string_literal: true

module RedmineRag
  # Redmine's documents (ids and the versions they should have in ragd, read
  # from a few plucks, no texts) against ragd's (ListDocuments): what is
  # missing, stale, ahead or extra, per project and type. Shared by the reindex
  # and status tasks and the admin page.
  #
  # ragd is listed *before* Redmine is read: a document ragd holds then existed
  # in Redmine when it was written, so one Redmine no longer has is really gone
  # (destroyed, emptied, or now out of scope), never merely newer than the read.
  class Inventory
    Entry = Struct.new(:id, :type, :project_id, :version, keyword_init: true)

    attr_reader :types, :project_ids, :expected, :stored

    # types: document types to look at (default: the indexed ones);
    # project_ids: only these projects (default: all).
    def initialize(types: nil, project_ids: nil, settings: RedmineRag.settings, client: RedmineRag.client)
      @settings = settings
      # Without named types ragd is listed whole: documents of a type no longer
      # indexed are then extra (and pruned).
      @listed_types = types && Array(types).map(&:to_s)
      @types = @listed_types || settings.index_types
      @project_ids = project_ids&.map(&:to_i)
      @client = client
    end

    def load
      @stored = {}
      begin
        @client.list_documents(types: @listed_types, project_ids: @project_ids).each do |d|
          @stored[d.id] = Entry.new(id: d.id, type: d.type, project_id: d.project_id, version: d.version)
        end
      rescue Ragd::InvalidArgument => e
        raise unless e.message.include?('unknown collection') # nothing written yet: nothing stored
      end
      excluded = @settings.excluded_project_ids.to_set
      indexed = @settings.index_types
      @expected = {}
      (@types & indexed).each do |type|
        Documents.kind(type).inventory(@project_ids).each do |id, version, project_id|
          next if excluded.include?(project_id)

          @expected[id] = Entry.new(id: id, type: type, project_id: project_id, version: version)
        end
      end
      self
    end

    def missing = @expected.values.reject { |e| @stored.key?(e.id) }
    def stale = @expected.values.select { |e| (s = @stored[e.id]) && s.version < e.version }
    # ragd holds a version above Redmine's (the plugin's counters were reset,
    # e.g. its tables dropped): the reindex removes it first, then sends it.
    def ahead = @expected.values.select { |e| (s = @stored[e.id]) && s.version > e.version }
    def extra = @stored.values.reject { |s| @expected.key?(s.id) }
    def current = @expected.values.select { |e| (s = @stored[e.id]) && s.version == e.version }

    # [[project_id, type], {redmine:, ragd:, missing:, stale:, extra:}] sorted by project and type.
    def by_project_and_type
      rows = Hash.new { |h, k| h[k] = { redmine: 0, ragd: 0, missing: 0, stale: 0, extra: 0 } }
      @expected.each_value { |e| rows[[e.project_id, e.type]][:redmine] += 1 }
      @stored.each_value { |s| rows[[s.project_id, s.type]][:ragd] += 1 }
      missing.each { |e| rows[[e.project_id, e.type]][:missing] += 1 }
      (stale + ahead).each { |e| rows[[e.project_id, e.type]][:stale] += 1 }
      extra.each { |s| rows[[s.project_id, s.type]][:extra] += 1 }
      rows.sort_by { |(p, t), _| [p.to_i, Documents::TYPES.index(t) || 99, t.to_s] }
    end

    def in_sync? = missing.empty? && stale.empty? && ahead.empty? && extra.empty?
  end
end
