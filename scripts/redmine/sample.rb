# frozen_string_literal: true

# The demo's sample, built from the CISI test collection committed in the
# repository (tests/data/cisi: 1,460 library-science abstracts and 112 queries
# with relevance judgments). Run with `rails runner` in the demo instance by
# scripts/redmine/demo.sh; deterministic (seeded), idempotent (does nothing when
# the sample is there).
#
# Five projects (public, private, a private subproject), users with different
# roles (issues visibility all / default / own, a role limited to one tracker,
# view_private_notes on some), a group assigned to issues, ~400 issues with
# private ones, notes (the CISI queries, attached to an issue they are relevant
# to, some private), wiki pages, news, forum messages and documents.

CISI_DIR = ENV.fetch('CISI_DIR')
PASSWORD = ENV.fetch('DEMO_PASSWORD', 'ragd-demo')
ADMIN_PASSWORD = ENV.fetch('DEMO_ADMIN_PASSWORD', 'admin-demo')

def cisi_records(path)
  out = {}
  current = field = nil
  File.read(path, encoding: 'ISO-8859-1').encode('UTF-8').each_line do |line|
    if (m = line.match(/\A\.([ITAWBX])\s*(\d*)\s*\z/))
      if m[1] == 'I'
        current = out[m[2].to_i] = Hash.new { |h, k| h[k] = +'' }
        field = nil
      else
        field = m[1]
      end
    elsif current && field
      current[field] << line
    end
  end
  out.transform_values { |r| r.transform_values { |v| v.gsub(/\s+/, ' ').strip } }
end

# Point the plugin at the demo's ragd (and index at the end). The demo runs on the
# plugin's defaults: every start writes them again (settings changed in Administration
# last until the next start), so a demo made by an older plugin does not keep that
# version's defaults (a stored search_max_results of 100 outlived its change to 50).
def index_for_demo
  if (address = ENV['DEMO_RAGD_ADDRESS'])
    Setting.plugin_redmine_rag = RedmineRag::Settings::DEFAULTS.merge('address' => address, 'collection' => 'demo')
    Setting.clear_cache
  end
  puts RedmineRag::Reindexer.new(prune: true, out: $stdout).run
end

if Project.exists?(identifier: 'library')
  puts 'sample already loaded'
  index_for_demo
  exit 0
end

docs = cisi_records(File.join(CISI_DIR, 'CISI.ALL'))
queries = cisi_records(File.join(CISI_DIR, 'CISI.QRY'))
relevant = Hash.new { |h, k| h[k] = [] }
File.foreach(File.join(CISI_DIR, 'CISI.REL')) do |line|
  q, d = line.split.map(&:to_i)
  relevant[q] << d if q && d
end
rng = Random.new(16)
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)

RedmineRag::Sync.suspended do # one reindex afterwards instead of a job per record
  ActiveRecord::Base.transaction do
    admin = User.find_by(login: 'admin')
    admin.password = admin.password_confirmation = ADMIN_PASSWORD
    admin.must_change_passwd = false
    admin.save!
    Setting.rest_api_enabled = '1'
    Setting.default_language = 'en'
    Setting.issue_group_assignment = '1' # issues assigned to the Cataloguers group
    Setting.notified_events = []          # a demo sends no mail (and ~700 mail jobs would hold SQLite's lock)

    user = lambda do |login, first, last|
      u = User.new(firstname: first, lastname: last, language: 'en')
      u.login = login
      u.mail = "#{login}@example.net"
      u.password = u.password_confirmation = PASSWORD
      u.save!
      u
    end
    alice = user.call('alice', 'Alice', 'Archer')   # Manager everywhere
    bob = user.call('bob', 'Bob', 'Baker')          # Developer: sees non-private issues and his own
    carol = user.call('carol', 'Carol', 'Clark')    # Reporter: no private notes
    dave = user.call('dave', 'Dave', 'Dawson')      # no membership: public projects as a non-member
    erin = user.call('erin', 'Erin', 'Evans')       # through the Cataloguers group; Contractor in audit
    frank = user.call('frank', 'Frank', 'Foster')   # Contractor: only his own issues, one tracker
    cataloguers = Group.new(lastname: 'Cataloguers')
    cataloguers.users << erin
    cataloguers.save!

    manager = Role.find_by!(name: 'Manager')
    developer = Role.find_by!(name: 'Developer')
    reporter = Role.find_by!(name: 'Reporter')
    manager.update!(issues_visibility: 'all')
    developer.update!(issues_visibility: 'default')
    developer.add_permission!(:view_private_notes)
    reporter.update!(issues_visibility: 'default')
    reporter.remove_permission!(:view_private_notes)
    support = Tracker.find_by!(name: 'Support')
    contractor = Role.new(name: 'Contractor', issues_visibility: 'own', assignable: true,
                          permissions: %i[view_issues add_issues add_issue_notes view_wiki_pages view_news view_messages])
    %i[view_issues add_issues add_issue_notes].each { |perm| contractor.set_permission_trackers(perm, [support.id.to_s]) }
    contractor.save!

    all_modules = %w[issue_tracking wiki news boards documents files]
    project = lambda do |identifier, name, is_public, modules, parent: nil|
      p = Project.new(name: name, identifier: identifier, is_public: is_public,
                      description: "Demo project #{name}, built from the CISI collection.")
      p.enabled_module_names = modules
      p.trackers = Tracker.all.to_a
      p.save!
      p.set_parent!(parent) if parent
      p.create_wiki(start_page: 'Wiki') if modules.include?('wiki') && p.wiki.nil?
      p
    end
    library = project.call('library', 'Library Science', true, all_modules)
    retrieval = project.call('retrieval', 'Information Retrieval', true, all_modules)
    cataloguing = project.call('cataloguing', 'Cataloguing', false, %w[issue_tracking wiki])
    archives = project.call('archives', 'Archives', false, %w[issue_tracking wiki], parent: library)
    audit = project.call('audit', 'Internal Audit', false, %w[issue_tracking])

    member = ->(p, principal, role) { Member.create!(project: p, principal: principal, role_ids: [role.id]) }
    [library, retrieval, cataloguing, archives, audit].each { |p| member.call(p, alice, manager) }
    [library, retrieval, archives].each { |p| member.call(p, bob, developer) }
    [library, retrieval].each { |p| member.call(p, carol, reporter) }
    member.call(cataloguing, cataloguers, developer)
    member.call(audit, erin, contractor)
    member.call(retrieval, frank, contractor)

    # Who writes in / is assigned to issues of each project.
    people = {
      library => [alice, bob, carol], retrieval => [alice, bob, carol, frank], cataloguing => [alice, erin],
      archives => [alice, bob], audit => [alice, erin]
    }
    assignees = {
      library => [alice, bob, nil], retrieval => [alice, bob, frank, nil], cataloguing => [alice, cataloguers, nil],
      archives => [alice, bob, nil], audit => [alice, erin, nil]
    }
    plan = [[library, 1..120], [retrieval, 121..240], [cataloguing, 241..300], [archives, 301..350], [audit, 351..400]]
    trackers = Tracker.order(:position).to_a
    open_status = IssueStatus.where(is_closed: false).order(:position).to_a
    closed = IssueStatus.where(is_closed: true).first
    priority = IssuePriority.default || IssuePriority.first
    issue_of_doc = {}
    plan.each do |p, range|
      range.each do |n|
        d = docs.fetch(n)
        tracker = p == audit || (p == retrieval && n % 5 == 0) ? support : trackers[n % trackers.size]
        author = p == audit && n.even? ? erin : people[p][n % people[p].size]
        author = frank if p == retrieval && tracker == support && n % 2 == 0
        issue = Issue.new(project: p, tracker: tracker, author: author, priority: priority,
                          subject: d['T'].to_s[0, 250].presence || "CISI #{n}", description: d['W'].presence || d['T'],
                          is_private: rng.rand < 0.12)
        assignee = assignees[p][rng.rand(assignees[p].size)]
        issue.assigned_to = assignee if assignee && issue.assignable_users.include?(assignee)
        issue.status = rng.rand < 0.2 ? closed : open_status[n % open_status.size]
        issue.save!
        issue_of_doc[n] = issue
      end
    end

    # Notes: each CISI query on up to three issues it is relevant to (a quarter
    # of them private), and a short follow-up on some issues.
    notes = 0
    follow_ups = ['Checked against the catalogue records: consistent.', 'Reproduced on the reading-room terminal.',
                  'Waiting for the vendor to answer.', 'Moved to the next review meeting.',
                  'The circulation figures for last term are attached to the wiki page.']
    note = lambda do |issue, text, k|
      writer = people[issue.project][k % people[issue.project].size]
      issue.reload.init_journal(writer, text)
      issue.private_notes = k % 4 == 0
      issue.save!
      notes += 1
    end
    queries.each do |q, rec|
      next if rec['W'].blank?

      relevant[q].map { |d| issue_of_doc[d] }.compact.uniq.first(3).each_with_index { |issue, k| note.call(issue, rec['W'], q + k) }
    end
    issue_of_doc.values.each_with_index do |issue, k|
      note.call(issue, follow_ups[k % follow_ups.size], k) if k % 7 == 3
    end

    # Wiki pages, news, forum messages, documents from further abstracts.
    titles = {}
    [library, retrieval, cataloguing, archives].each_with_index do |p, k|
      (401 + 15 * k...416 + 15 * k).each do |n|
        d = docs.fetch(n)
        base = d['T'].to_s.gsub(/[^[:alnum:] -]/, '').strip.tr(' ', '_')[0, 60].presence || "Page_#{n}"
        title = titles.key?(base) ? "#{base}_#{n}" : base
        titles[title] = true
        page = WikiPage.new(wiki: p.wiki, title: title)
        page.content = WikiContent.new(text: "h1. #{d['T']}\n\n#{d['W']}\n\n_#{d['A']}_", author: people[p].first)
        page.save!
      end
    end
    [library, retrieval].each_with_index do |p, k|
      (461 + 3 * k...464 + 3 * k).each do |n|
        d = docs.fetch(n)
        News.create!(project: p, author: alice, title: d['T'].to_s[0, 60], summary: d['A'].to_s[0, 255], description: d['W'])
      end
      board = Board.create!(project: p, name: 'Discussion', description: 'Questions and answers')
      (467 + 12 * k...479 + 12 * k).each_slice(3) do |slice|
        topic = nil
        slice.each do |n|
          d = docs.fetch(n)
          m = Message.new(board: board, author: people[p][n % people[p].size], subject: d['T'].to_s[0, 250],
                          content: d['W'].presence || d['T'])
          m.parent = topic if topic
          m.save!
          topic ||= m
        end
      end
      category = DocumentCategory.first
      (491 + 3 * k...494 + 3 * k).each do |n|
        d = docs.fetch(n)
        Document.create!(project: p, category: category, title: d['T'].to_s[0, 60], description: d['W'])
      end
    end
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    puts format('sample loaded in %.1f s: %d projects, %d users, %d issues (%d private), %d notes (%d private), ' \
                '%d wiki pages, %d news, %d messages, %d documents',
                took, Project.count, User.where(type: 'User').count, Issue.count, Issue.where(is_private: true).count,
                notes, Journal.where(private_notes: true).count, WikiPage.count, News.count, Message.count, Document.count)
  end
end

index_for_demo
