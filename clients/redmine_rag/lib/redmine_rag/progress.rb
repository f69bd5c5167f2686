# frozen_string_literal: true

module RedmineRag
  # A progress bar for the rake tasks: redrawn in place on a terminal, a line
  # every 10% otherwise (CI logs). Written here rather than pulled in as a gem:
  # Redmine's bundle has none, and an admin's `bundle install --local` must not
  # need one for ten lines of output.
  class Progress
    WIDTH = 30

    def initialize(total, label, out: $stdout)
      @total = total
      @label = label
      @out = out
      @done = 0
      @started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      @last_decile = -1
      @tty = out.respond_to?(:tty?) && out.tty?
    end

    attr_reader :done

    def advance(count = 1)
      @done += count
      draw
    end

    def finish
      draw(final: true)
      @out.puts if @tty
    end

    def elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - @started

    private

    def draw(final: false)
      return if @out.nil?

      frac = @total.positive? ? [@done.to_f / @total, 1.0].min : 1.0
      decile = (frac * 10).floor
      return unless @tty || decile > @last_decile || (final && @done.zero?)

      @last_decile = decile
      rate = @done / [elapsed, 1e-3].max
      eta = rate.positive? && @done < @total ? format(' ETA %ds', ((@total - @done) / rate).ceil) : ''
      bar = '#' * (frac * WIDTH).round
      line = format('%-10s [%-*s] %d/%d %3d%% %.1f docs/s%s', @label, WIDTH, bar, @done, @total, (frac * 100).floor, rate, eta)
      @tty ? @out.print("\r#{line}\e[K") : @out.puts(line)
    end
  end
end
