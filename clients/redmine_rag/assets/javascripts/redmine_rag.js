// redmine_rag: the similar-issues panel (loaded after the issue page) and the
// duplicate suggestions of the new-issue form (debounced; nothing is asked for
// short text, and a slow answer never blocks typing: each request supersedes
// the previous one). jQuery is Redmine's.
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

  function moveSearchNotice() {
    var notice = $('#redmine-rag-search-notice');
    var target = $('#search-results-counts').length ? $('#search-results-counts') : $('#search-results');
    if (notice.length && target.length) notice.insertBefore(target);
  }

  $(function () { loadSimilar(); watchNewIssue(); moveSearchNotice(); });
})(jQuery);
