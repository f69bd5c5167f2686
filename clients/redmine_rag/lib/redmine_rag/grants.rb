# frozen_string_literal: true

module RedmineRag
  # The search filters (permission grants) built by Ragd::Redmine.filter_for,
  # kept per user, project set and types in this process: building one walks
  # every project of the search with the user's roles and modules (15-35 ms per
  # request on the demo data, more with many projects), for an answer that
  # changes only when an administrator changes permissions.
  #
  # A filter is reused while nothing it depends on changed here: every commit of
  # a membership, role, project, enabled module or principal (user, group)
  # starts a new generation (GrantsPatch), and an entry lives at most TTL
  # seconds, which bounds how long another process (a second Puma worker) keeps
  # an old one. A filter that is too wide for a moment cannot show anything:
  # every page, panel and answer checks its hits against Redmine's own `visible`
  # scopes. One that is too narrow misses results for at most TTL seconds.
  module Grants
    TTL = 30 # seconds
    MAX_ENTRIES = 2_000

    @entries = {}
    @generation = 0
    @lock = Mutex.new

    module_function

    # Ragd::Filter for `user` over `projects` (Array or nil: all) and `types`, or nil
    # when the user may see none of it (a copy: callers add exclusions and metadata).
    def filter(user, projects, types)
      key = [user.id, user.admin?, projects&.map(&:id)&.sort, types.sort]
      entry = @lock.synchronize { @entries[key] }
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      unless entry && entry[:generation] == @generation && entry[:expires] > now
        generation = @generation
        value = Runtime.measure(:grants) { Ragd::Redmine.filter_for(user, projects, types: types) }
        entry = { value: value, generation: generation, expires: now + TTL }
        store(key, entry)
      end
      entry[:value]&.dup
    end

    # Something filters depend on changed: build them again.
    def changed! = @lock.synchronize { @generation += 1 }

    def clear = @lock.synchronize { @entries.clear }

    def store(key, entry)
      @lock.synchronize do
        @entries.shift while @entries.size >= MAX_ENTRIES # oldest first (insertion order)
        @entries.delete(key)
        @entries[key] = entry
      end
    end
  end
end
