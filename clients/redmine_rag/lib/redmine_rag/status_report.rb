# frozen_string_literal: true

module RedmineRag
  # Where indexing stands, for `rake redmine_rag:status` and the admin page:
  # ragd's health and model, Redmine's documents against ragd's per project and
  # type (missing, stale, extra), the documents ragd refused and the writes
  # waiting for a retry, and the job queue.
  class StatusReport
    Daemon = Struct.new(:address, :collection, :ok, :error, :version, :uptime_s, :model, :documents, :chunks,
                        :index_kind, keyword_init: true)

    attr_reader :ragd, :inventory, :inventory_error

    def initialize(types: nil, project_ids: nil, client: RedmineRag.client, settings: RedmineRag.settings)
      @types = types
      @project_ids = project_ids
      @client = client
      @settings = settings
    end

    def load
      @ragd = probe
      if @ragd.ok
        begin
          @inventory = Inventory.new(types: @types, project_ids: @project_ids, client: @client).load
        rescue ::Ragd::Error => e
          @inventory_error = e.message
        end
      end
      self
    end

    def failures = Failure.counts
    def recent_failures(limit = 20) = Failure.recent.limit(limit).to_a

    def project_names
      @project_names ||= Project.pluck(:id, :identifier).to_h
    end

    # The job queue the plugin's jobs go to, as far as the adapter tells.
    def queue
      adapter = RedmineRag::SyncJob.queue_adapter_name
      { adapter: adapter, pending: pending_jobs(adapter.to_s), durable: !%w[async inline].include?(adapter.to_s) }
    end

    # Jobs waiting in queue `rag`, for the two durable adapters Debian packages.
    def pending_jobs(adapter)
      case adapter
      when 'delayed_job' then ::Delayed::Job.where(queue: 'rag').count
      when 'sidekiq'
        require 'sidekiq/api'
        ::Sidekiq::Queue.new('rag').size
      end
    rescue StandardError, LoadError => e
      RedmineRag.log(:warn, "could not count the #{adapter} queue: #{e.message}")
      nil
    end

    # Printed by the rake task.
    def to_text(names: 10)
      [daemon_line, *inventory_lines(names), *failure_lines(names), queue_line].join("\n")
    end

    private

    def daemon_line
      r = @ragd
      return "ragd #{r.address}: UNAVAILABLE (#{r.error})" unless r.ok

      "ragd #{r.address} (ragd #{r.version}, model #{r.model}), collection #{r.collection.inspect}: " \
        "#{r.documents} documents, #{r.chunks} chunks, #{r.index_kind} index"
    end

    ROW = '%-28s %-9s %8s %8s %8s %8s %8s'

    def inventory_lines(names)
      return ["could not list ragd's documents: #{@inventory_error}"] if @inventory_error
      return [] unless @inventory

      out = [format(ROW, 'project', 'type', 'redmine', 'ragd', 'missing', 'stale', 'extra')]
      totals = Hash.new(0)
      @inventory.by_project_and_type.each do |(project_id, type), row|
        out << format(ROW, "#{project_names[project_id] || '(deleted)'} (#{project_id})", type,
                      *row.values_at(:redmine, :ragd, :missing, :stale, :extra))
        row.each { |k, v| totals[k] += v }
      end
      out << format(ROW, 'total', '', *totals.values_at(:redmine, :ragd, :missing, :stale, :extra))
      out.concat(named('missing', @inventory.missing.map(&:id), names))
      out.concat(named('stale', (@inventory.stale + @inventory.ahead).map(&:id), names))
      out.concat(named('extra (not in Redmine: `rake redmine_rag:prune`)', @inventory.extra.map(&:id), names))
      out << (@inventory.in_sync? ? 'in sync' : 'NOT in sync: `rake redmine_rag:reindex` repairs')
    end

    def failure_lines(names)
      counts = failures
      ["refused by ragd: #{counts.fetch('refused', 0)}, waiting for a retry: #{counts.fetch('retrying', 0)}, " \
       "retries given up: #{counts.fetch('gave_up', 0)}",
       *recent_failures(names).map { |f| "  #{f.doc_id} #{f.state} (#{f.attempts}x): #{f.reason}" }]
    end

    def queue_line
      q = queue
      "job queue: #{q[:adapter]}#{q[:pending] ? ", #{q[:pending]} pending" : ''}" \
        "#{q[:durable] ? '' : ' (in-process: queued jobs are lost on restart; see the README)'}"
    end

    def probe
      stats = @client.stats(@settings.collection, timeout: [@settings.search_timeout, 5].max)
      coll = stats.collections.first
      Daemon.new(address: @settings.address, collection: @settings.collection, ok: true, version: stats.version,
                 uptime_s: stats.uptime_s, model: model_name(stats.model), documents: coll&.documents.to_i,
                 chunks: coll&.chunks.to_i, index_kind: coll&.index_kind)
    rescue ::Ragd::InvalidArgument => e
      raise unless e.message.include?('unknown collection') # nothing indexed yet: an empty collection

      Daemon.new(address: @settings.address, collection: @settings.collection, ok: true, documents: 0, chunks: 0,
                 index_kind: 'none', version: '?', model: '?')
    rescue ::Ragd::Error => e
      Daemon.new(address: @settings.address, collection: @settings.collection, ok: false, error: e.message)
    end

    def model_name(model) = model ? "#{model.name} #{model.dimension}-d #{model.provider}" : '?'

    def named(label, ids, limit)
      return [] if ids.empty?

      more = ids.size > limit ? " and #{ids.size - limit} more" : ''
      ["#{label}: #{ids.first(limit).join(', ')}#{more}"]
    end
  end
end
