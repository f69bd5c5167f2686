# frozen_string_literal: true

# Run from the repository root:
#   ruby -Iclients/ruby/lib -Iclients/ruby/test -e 'Dir["clients/ruby/test/test_*.rb"].sort.each { |f| require File.expand_path(f) }'
# Tests that need a daemon read its address from RAGD_ADDRESS (tests/test_ruby_client.py
# starts one) and are skipped without it.
require "minitest/autorun"
require "json"
require "rbconfig"
require "securerandom"
require "socket"
require "ragd/client"
require "ragd/redmine"

module RagdTest
  ADDRESS = ENV["RAGD_ADDRESS"]
  LIB = File.expand_path("../lib", __dir__)

  def require_daemon!
    skip "RAGD_ADDRESS not set: no daemon to test against" unless ADDRESS
  end

  # A collection of its own per test, so tests neither see nor disturb each other.
  def new_collection = "rb_#{SecureRandom.hex(4)}"

  def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def elapsed
    t0 = monotonic
    yield
    monotonic - t0
  end

  # Runs a Ruby script in a fresh interpreter (a process that has never touched
  # grpc: the fork scenarios need that), killing its whole process group after
  # `timeout` seconds. Returns [Process::Status or nil if killed, output].
  def run_ruby(script, *args, timeout:)
    out_r, out_w = IO.pipe
    pid = Process.spawn(RbConfig.ruby, "-I#{LIB}", script, *args.map(&:to_s),
                        out: out_w, err: out_w, pgroup: true)
    out_w.close
    reader = Thread.new { out_r.read }
    deadline = monotonic + timeout
    status = nil
    until (status = Process.wait2(pid, Process::WNOHANG)&.last)
      if monotonic > deadline
        Process.kill(:KILL, -pid) # the script and every child it forked
        Process.wait(pid)
        break
      end
      sleep 0.05
    end
    [status, reader.value]
  end
end
