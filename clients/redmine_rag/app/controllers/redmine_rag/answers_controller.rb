# frozen_string_literal: true

module RedmineRag
  # The "Ask" box of the search page (loaded after the page, like the
  # similar-issues panel): ragd's answer to the question, streamed as it is
  # generated, one JSON object a line (application/x-ndjson):
  #
  #   {"sources": [{"n": 1, "title": "...", "url": "/issues/12"}, ...]}
  #   {"delta": "text"}                       (many)
  #   {"done": {"html": "<p>...</p>", "grounding": "cited"}}
  #
  # or 204 No Content when there is nothing to show: the box disappears. That is
  # the case without a question, for a user who may see none of the types
  # (no ragd call at all), when the daemon has no answer model (the box is then
  # hidden for a while: Answering), or when ragd is unavailable. A failure
  # after the first line sends {"stop": true}.
  class AnswersController < ApplicationController
    include ActionController::Live

    MAX_QUESTION = 1000 # characters

    # Any passage Redmine would hide from the user: nothing of the answer is shown.
    class Hidden < StandardError; end

    def show
      settings = RedmineRag.settings
      question = params[:q].to_s.strip[0, MAX_QUESTION]
      return head(:no_content) if question.empty? || !Answering.offered?(settings)

      filter = Permissions.filter(User.current, requested_projects, requested_types(settings))
      return head(:no_content) unless filter # the user may see none of it: no ragd call

      response.headers['Content-Type'] = 'application/x-ndjson'
      response.headers['Cache-Control'] = 'no-cache'
      response.headers['X-Accel-Buffering'] = 'no' # nginx: pass the lines on as they come
      stream_answer(question, filter, settings)
    ensure
      response.stream.close
    end

    private

    # The search page's project scope (ids), or nil: every project. The filter
    # keeps only the projects the user may see, whatever ids are sent.
    def requested_projects
      return nil if params[:projects].blank?

      Project.where(id: params[:projects].to_s.split(',').map(&:to_i)).to_a
    end

    def requested_types(settings)
      Array(params[:types]).map(&:to_s) & settings.index_types
    end

    def stream_answer(question, filter, settings)
      links = nil
      answer = RedmineRag.client.answer(question, filter: filter, language: current_language.to_s,
                                                  timeout: settings.answer_timeout) do |event|
        case event
        when Ragd::AnswerContext
          links = Answering.links(event.passages, User.current) or raise Hidden
          emit(sources: links.each_with_index.map do |l, i|
            { n: i + 1, title: l.title, url: url_for(l.url) }
          end)
        when Ragd::AnswerDelta then emit(delta: event.text)
        end
      end
      Answering.model_back!(settings)
      emit(done: { html: answer_html(answer.text, links || []), grounding: answer.grounding })
    rescue Ragd::FailedPrecondition => e
      Answering.no_model!(settings)
      stop("no answer model: #{e.message}")
    rescue Hidden
      stop('a passage Redmine hides from this user (the index is behind a change): no answer shown')
    rescue Ragd::Error => e
      stop("unavailable: #{e.message}")
    rescue ActionController::Live::ClientDisconnected
      nil # the reader left: leaving the block cancelled the answer
    end

    def emit(object)
      response.stream.write("#{object.to_json}\n")
    end

    def stop(reason)
      RedmineRag.log(:info, "answer not shown: #{reason}")
      response.committed? ? emit(stop: true) : head(:no_content)
    end

    # The answer's text, escaped, each [n] a link to the passage's record.
    def answer_html(text, links)
      html = ERB::Util.html_escape(text.to_s).to_str.gsub(/\[(\d+)\]/) do |cited|
        n = cited[1..-2].to_i
        link = links[n - 1] if n.positive?
        link ? view_context.link_to(cited, link.url, title: link.title) : cited
      end
      view_context.simple_format(html, {}, sanitize: false)
    end
  end
end
