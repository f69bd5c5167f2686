// redmine_rag: the similar-issues panel (loaded after the issue page) and the
// duplicate suggestions of the new-issue form (debounced; nothing is asked for
// short text, and a slow answer never blocks typing: each request supersedes
// the previous one), and the "Ask" box of the search page (the answer streamed
// as ragd generates it: one JSON object a line). jQuery is Redmine's.
(function ($) {
  'use strict';

  function loadSimilar() {
    var box = $('#redmine-rag-similar');
    if (!box.length) return;
    $.ajax({ url: box.data('url'), dataType: 'html' })
      .done(function (html) { box.html(html); })
      .fail(function () { box.find('.redmine-rag-loading').remove(); });
  }

  function watchNewIssue() {
    var box = $('#redmine-rag-duplicates');
    if (!box.length) return;
    var minChars = parseInt(box.data('min-chars'), 10) || 8;
    var timer = null, request = null, last = null;

    function projectId() {
      var select = $('#issue_project_id');
      return (select.length && select.val()) || box.data('project-id');
    }

    function ask() {
      var subject = $.trim($('#issue_subject').val() || '');
      var description = $.trim($('#issue_description').val() || '').slice(0, 1000);
      var key = projectId() + '\u0000' + subject + '\u0000' + description;
      if (subject.length < minChars) { box.hide().empty(); last = null; return; }
      if (key === last) return;
      last = key;
      if (request) request.abort();
      request = $.ajax({ url: box.data('url'), dataType: 'html',
                         data: { project_id: projectId(), subject: subject, description: description } })
        .done(function (html) {
          html = $.trim(html);
          if (html) box.html(html).show(); else box.hide().empty();
        })
        .always(function () { request = null; });
    }

    // The form is re-rendered by Redmine when the tracker or project changes:
    // delegate from the document so the handlers survive.
    $(document).on('input', '#issue_subject, #issue_description', function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 400);
    });
  }

  // Lines of the answer endpoint: {sources}, {delta}..., {done} or {stop}.
  function loadAnswer() {
    var box = $('#redmine-rag-answer');
    if (!box.length || !window.fetch || !window.TextDecoder) { box.remove(); return; }
    var text = box.find('.redmine-rag-answer-text'), started = false;
    var notes = { uncited: box.data('unverified'), not_supported: box.data('not-supported'),
                  no_passages: box.data('no-passages') };

    function handle(event) {
      if (event.sources) {
        var list = box.find('.redmine-rag-answer-sources ol').empty();
        $.each(event.sources, function (_, s) {
          list.append($('<li>').append($('<a>').attr('href', s.url).text(s.title)));
        });
        if (event.sources.length) box.find('.redmine-rag-answer-sources').show();
      } else if (event.delta) {
        if (!started) { text.empty(); started = true; }
        text.append(document.createTextNode(event.delta));
      } else if (event.done) {
        text.html(event.done.html);
        var note = notes[event.done.grounding];
        if (note) text.append($('<p class="redmine-rag-answer-note">').text(note));
        box.addClass('redmine-rag-answer-done');
      } else if (event.stop) {
        box.remove();
      }
    }

    fetch(box.data('url'), { credentials: 'same-origin', headers: { Accept: 'application/x-ndjson' } })
      .then(function (response) {
        if (response.status !== 200 || !response.body) { box.remove(); return; }
        var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = '';
        function pump() {
          return reader.read().then(function (chunk) {
            buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
            var lines = buffer.split('\n');
            buffer = lines.pop();
            $.each(lines, function (_, line) { if ($.trim(line)) handle(JSON.parse(line)); });
            if (!chunk.done) return pump();
            if (!box.hasClass('redmine-rag-answer-done')) box.remove(); // ended without its answer
          });
        }
        return pump();
      })
      .catch(function () { box.remove(); });
  }

  function moveSearchNotice() {
    var notice = $('#redmine-rag-search-notice');
    var target = $('#search-results-counts').length ? $('#search-results-counts') : $('#search-results');
    if (notice.length && target.length) notice.insertBefore(target);
    var answer = $('#redmine-rag-answer');
    if (answer.length && target.length) answer.insertBefore(target);
  }

  $(function () { loadSimilar(); watchNewIssue(); moveSearchNotice(); loadAnswer(); });
})(jQuery);
