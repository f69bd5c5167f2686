# frozen_string_literal: true

module Ragd
  # Every failure of a call is a Ragd::Error (never a bare GRPC::BadStatus), so a
  # caller has one thing to rescue. #code is the gRPC status code (Integer), or
  # nil for errors raised before anything was sent.
  class Error < StandardError
    attr_reader :code, :details, :metadata

    def initialize(message = nil, code: nil, details: nil, metadata: {})
      super(message)
      @code = code
      @details = details
      @metadata = metadata || {}
    end
  end

  # Bad input; the message names the field, e.g. "documents[3].id: ...".
  class InvalidArgument < Error; end

  class NotFound < Error; end

  # UNAVAILABLE (daemon down, loading, shutting down) or DEADLINE_EXCEEDED: the
  # one error a Redmine caller should rescue to fall back to its own search.
  class Unavailable < Error; end

  # A queue is full; retry after #retry_after seconds (nil if the daemon gave no hint).
  class ResourceExhausted < Error
    def retry_after
      ms = metadata["retry-after-ms"]
      ms && ms.to_f / 1000
    end
  end

  # An RPC or mode ragd announces as coming (e.g. Upsert wait: false, KEYWORD search).
  class Unimplemented < Error; end

  # No token, or one the daemon does not know (revoked, mistyped).
  class Unauthenticated < Error; end

  # The token is valid but lacks the scope the call needs (search, write, admin).
  class PermissionDenied < Error; end

  # The daemon is not set up for the call (e.g. #answer without a model server
  # configured, or the model server refuses the daemon's key). Retrying will not help.
  class FailedPrecondition < Error; end

  # grpc was initialised in a parent process and then used in a forked child.
  # A deployment bug, not an outage: it is deliberately not an Unavailable, so it
  # is not silently swallowed by a search fallback in every worker.
  class ForkError < Error; end

  module Errors
    CODES = {
      GRPC::Core::StatusCodes::INVALID_ARGUMENT => InvalidArgument,
      GRPC::Core::StatusCodes::NOT_FOUND => NotFound,
      GRPC::Core::StatusCodes::UNAVAILABLE => Unavailable,
      GRPC::Core::StatusCodes::DEADLINE_EXCEEDED => Unavailable,
      GRPC::Core::StatusCodes::RESOURCE_EXHAUSTED => ResourceExhausted,
      GRPC::Core::StatusCodes::UNIMPLEMENTED => Unimplemented,
      GRPC::Core::StatusCodes::UNAUTHENTICATED => Unauthenticated,
      GRPC::Core::StatusCodes::PERMISSION_DENIED => PermissionDenied,
      GRPC::Core::StatusCodes::FAILED_PRECONDITION => FailedPrecondition
    }.freeze

    # The RuntimeErrors grpc raises in a forked child (1.51 and later wordings).
    FORK_MESSAGE = /before and after forking|GRPC\.prefork|GRPC\.postfork/.freeze

    FORK_HINT = "ragd cannot be called in this process (pid %<pid>d): it was forked from a process that " \
                "had already used grpc, and grpc %<version>s does not work across fork. Configure " \
                "Ragd::Client before forking but make no call until the worker runs (no ragd call in " \
                "initializers or in the Puma/Unicorn master). Cause: %<cause>s"

    CODE_NAMES = GRPC::Core::StatusCodes.constants.to_h { |c| [GRPC::Core::StatusCodes.const_get(c), c.to_s] }.freeze

    module_function

    def from_status(err, address)
      klass = CODES.fetch(err.code, Error)
      name = CODE_NAMES.fetch(err.code, err.code.to_s)
      klass.new("#{name}: #{err.details} (ragd at #{address})",
                code: err.code, details: err.details, metadata: err.metadata)
    end

    def fork_error(cause)
      ForkError.new(format(FORK_HINT, pid: Process.pid, version: GRPC::VERSION, cause: cause))
    end
  end
end
