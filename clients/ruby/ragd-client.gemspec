# frozen_string_literal: true

require_relative "lib/ragd/version"

Gem::Specification.new do |spec|
  spec.name = "ragd-client"
  spec.version = Ragd::VERSION
  spec.summary = "Fork-safe gRPC client for the ragd retrieval daemon (RedMica/Redmine semantic search)"
  spec.description = <<~TEXT
    A thin wrapper over the generated ragd.v1 stubs: plain Ruby values in and out, a deadline on
    every call, a channel per process rebuilt after fork (Puma, Unicorn, Passenger), and
    Ragd::Unavailable to fall back on. Includes a Redmine mapping example (ragd/redmine).
  TEXT
  spec.authors = ["ragd contributors"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1" # Process._fork (the before-fork hook), endless methods

  # Dir, not `git ls-files`: the gem builds from a tarball or a vendored copy too.
  spec.files = Dir["lib/**/*.rb"] + ["README.md", "ragd-client.gemspec"]
  spec.require_paths = ["lib"]

  # Debian 12 ships grpc 1.51 (ruby-grpc) and google-protobuf 3.21 (ruby-google-protobuf).
  spec.add_dependency "google-protobuf", ">= 3.21", "< 5"
  spec.add_dependency "grpc", ">= 1.51", "< 2"
  spec.add_development_dependency "minitest", "~> 5.15"
  spec.metadata["rubygems_mfa_required"] = "true"
end
