# frozen_string_literal: true

module RedmineRag
  # Backfill and repair (`rake redmine_rag:reindex`): compares Redmine with ragd
  # (RedmineRag::Inventory) and streams only what is missing or stale through
  # IndexStream, so a re-run is cheap; with prune, deletes what Redmine no
  # longer has. A document ragd refuses is recorded with its reason and the
  # stream resumes after it: one bad document never stops the run.
  class Reindexer
    Summary = Struct.new(:redmine, :sent, :indexed, :unchanged, :stale, :pruned, :failed, :seconds,
                         keyword_init: true) do
      def to_s
        parts = ["#{redmine} documents in Redmine", "#{sent} sent", "#{indexed} indexed", "#{unchanged} unchanged"]
        parts << "#{stale} stale (ragd had newer)" if stale.positive?
        parts << "#{pruned} pruned" unless pruned.nil?
        parts << "#{failed.size} failed"
        format('%s in %.1f s', parts.join(', '), seconds)
      end
    end

    def initialize(types: nil, project_ids: nil, prune: false, batch_size: 64, out: nil, client: RedmineRag.client)
      @types = types
      @project_ids = project_ids
      @prune = prune
      @batch_size = batch_size
      @out = out
      @client = client
    end

    def run
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      inv = Inventory.new(types: @types, project_ids: @project_ids, client: @client).load
      @summary = Summary.new(redmine: inv.expected.size, sent: 0, indexed: 0, unchanged: inv.current.size, stale: 0,
                             pruned: nil, failed: {}, seconds: 0)
      # ragd holds a higher version than Redmine's (the plugin's counters were
      # reset): remove it unversioned first, or the lower version would be refused.
      ahead = inv.ahead
      @client.delete(ahead.map(&:id)) unless ahead.empty?
      todo = inv.missing + inv.stale + ahead
      @progress = Progress.new(todo.size, 'indexing', out: @out)
      stream(documents(todo)) unless todo.empty?
      @progress.finish
      prune(inv.extra) if @prune
      @summary.seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
      @summary
    end

    private

    # The documents of these entries, read a batch at a time (counters first).
    def documents(entries)
      Enumerator.new do |y|
        entries.group_by(&:type).each do |type, list|
          kind = Documents.kind(type)
          list.map { |e| Documents.parse_id(e.id).last }.each_slice(@batch_size) do |ids|
            records, counters = kind.find_batch(ids)
            found = 0
            records.each do |record|
              doc = kind.document(record, counters)
              next unless doc

              found += 1
              y << doc
            end
            @progress.advance(ids.size - found) # gone or emptied since the inventory: nothing to send
          end
        end
      end
    end

    def stream(docs)
      source = docs.each # external iteration: a refused document restarts the stream where it stopped
      pending = [] # handed to the stream, not acked yet, in order
      loop do
        replay = pending.dup
        feed = Enumerator.new do |y|
          replay.each { |d| y << d }
          loop do
            d = source.next
            pending << d
            y << d
          end
        end
        begin
          @client.index_stream(feed, batch_size: @batch_size) do |result|
            settle(result.acks, pending)
          end
          return
        rescue Ragd::InvalidArgument => e
          # The stream stopped at the first batch not acked (pending starts with it).
          at = Indexer.refused_at(e, [pending.size, @batch_size].min)
          raise unless at

          refuse(pending.delete_at(at), e.details.to_s)
        end
      end
    end

    def settle(acks, pending)
      written = []
      acks.each do |ack|
        doc = pending.shift
        raise Ragd::Error, "ragd acked #{ack.id} where #{doc&.dig(:id)} was sent" unless doc && doc[:id] == ack.id

        @summary.sent += 1
        case ack.status
        when :indexed then @summary.indexed += 1
        when :unchanged then @summary.unchanged += 1
        when :stale then @summary.stale += 1
        when :failed then refuse(doc, ack.error, sent: true)
        end
        written << ack.id unless ack.status == :failed
      end
      Failure.clear!(written)
      @progress.advance(acks.size)
    end

    def refuse(doc, reason, sent: false)
      @summary.sent += 1 unless sent
      @summary.failed[doc[:id]] = reason
      Indexer.refuse(doc, reason)
      @progress.advance unless sent
    end

    def prune(extra)
      versions = extra.to_h { |e| [e.id, e.version] }
      Indexer.new(client: @client).delete(versions)
      @summary.pruned = versions.size
    end
  end
end
