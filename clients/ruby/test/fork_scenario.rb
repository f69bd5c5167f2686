# frozen_string_literal: true

# A pre-forking server in miniature, run by test_fork.rb in a fresh interpreter
# (one that has never touched grpc):
#
#   ruby fork_scenario.rb MODE ADDRESS COLLECTION CHILDREN
#
# MODE "configured": like Puma/Unicorn with preload_app, the parent loads the gem
#   and configures a client but makes no call, then forks workers.
# MODE "called": the parent makes a call first (the mistake the gem must survive).
#
# Each child searches with the inherited client from 3 threads at once and
# prints one JSON line; the parent bounds every child in time (a hang is killed
# and reported), then searches itself and prints a summary line.
require "json"
require "ragd/client"

$stdout.sync = true
Thread.report_on_exception = false # a thread's error is reported in the JSON line
mode, address, collection, children = ARGV
client = Ragd::Client.new(address, timeout: 10, collection: collection)
client.stats(collection) if mode == "called"

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

pids = Integer(children).times.map do |i|
  fork do
    t0 = now
    line = { child: i, pid: Process.pid }
    begin
      counts = 3.times.map { Thread.new { client.search("printer jam", top_k: 3).hits.size } }.map(&:value)
      line.merge!(outcome: "ok", hits: counts)
    rescue Ragd::Error => e
      line.merge!(outcome: e.class.name, message: e.message)
    rescue Exception => e # rubocop:disable Lint/RescueException -- reported, not hidden
      line.merge!(outcome: "unexpected #{e.class}", message: e.message)
    end
    puts JSON.generate(line.merge(seconds: (now - t0).round(3)))
    exit 0 # a normal exit, finalizers and all, as a worker's
  end
end

deadline = now + 30
statuses = pids.to_h do |pid|
  status = nil
  sleep 0.02 until (status = Process.wait2(pid, Process::WNOHANG)&.last) || now > deadline
  unless status
    Process.kill(:KILL, pid)
    Process.wait(pid)
  end
  [pid, status ? status.exitstatus : "hung (killed)"]
end
parent = begin
  client.search("printer jam", top_k: 3).hits.size
rescue Ragd::Error => e
  "#{e.class}: #{e.message}"
end
puts JSON.generate(parent: Process.pid, exits: statuses.values, parent_search_hits: parent)
