# frozen_string_literal: true

module Ragd
  VERSION = "0.1.0"
end
