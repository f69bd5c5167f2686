# frozen_string_literal: true

module RedmineRag
  # A random Redmine world for the permission property test, seeded: projects
  # public and private, subprojects, modules on and off, archived and closed
  # projects; roles with issues visibility all/default/own, tracker limits,
  # with and without view_private_notes and the wiki/news/forum/document view
  # permissions, the builtin Non member and Anonymous roles too; users (one an
  # admin) with memberships, groups with memberships; issues private and
  # public, assigned to users and to groups; notes private and public; wiki
  # pages, news, forum messages, documents. Texts come from CISI.
  class PermissionWorld
    MODULES = %w[issue_tracking wiki news boards documents].freeze
    PERMISSIONS = %i[view_issues view_private_notes view_wiki_pages view_news view_messages view_documents].freeze

    attr_reader :projects, :users, :groups, :issues

    def initialize(seed:, scale:, texts:)
      @seed = seed
      @scale = scale
      @rng = Random.new(seed)
      @texts = texts
      @trackers = Tracker.all.to_a
    end

    def n(base) = [(base * @scale).round, 1].max
    def pick(list) = list[@rng.rand(list.size)]
    def chance(probability) = @rng.rand < probability
    def some(list, max) = list.sample(@rng.rand(max + 1), random: @rng)

    def text
      @text_at = ((@text_at || @rng.rand(@texts.size)) + 1 + @rng.rand(7)) % @texts.size
      @texts[@text_at]
    end

    def build
      roles = build_roles
      build_projects
      build_people(roles)
      build_issues
      build_notes
      build_content
      close_and_archive
      self
    end

    # Changes made through Redmine once everything is indexed: the callbacks
    # and jobs must carry every one of them to ragd.
    def mutate
      @issues.sample(n(40), random: @rng).each { |issue| change_issue(Issue.find_by(id: issue.id)) }
      Journal.where(journalized_type: 'Issue', journalized_id: @issues.map(&:id)).sample(n(20), random: @rng)
             .each { |j| j.update!(private_notes: !j.private_notes) }
      WikiPage.where(wiki_id: @projects.map { |p| p.wiki.id }).sample(n(4), random: @rng)
              .each { |page| page.update!(title: "#{page.title}_renamed") }
      @issues.sample(n(8), random: @rng).each { |i| Issue.find_by(id: i.id)&.destroy }
      News.where(project_id: @projects.map(&:id)).sample(n(2), random: @rng).each(&:destroy)
    end

    private

    def build_roles
      roles = Array.new(n(6)) do |i|
        role = Role.new(name: "Prop role #{i}", issues_visibility: pick(%w[all default own]), assignable: true,
                        permissions: PERMISSIONS.select { |p| chance(p == :view_issues ? 0.85 : 0.6) })
        role.set_permission_trackers(:view_issues, @trackers.sample(1 + @rng.rand(2), random: @rng).map(&:id)) if chance(0.3)
        role.save!
        role
      end
      [Role.non_member, Role.anonymous].each do |role|
        role.permissions = PERMISSIONS.select { |p| chance(p == :view_issues ? 0.8 : 0.5) }
        role.issues_visibility = pick(%w[all default own]) # anonymous: Redmine shows only non-private issues anyway
        role.set_permission_trackers(:view_issues, chance(0.2) ? [pick(@trackers).id] : :all)
        role.save!
      end
      roles
    end

    def build_projects
      @projects = []
      n(8).times do |i|
        project = Project.new(name: "Prop project #{i}", identifier: "prop-#{@seed}-#{i}", is_public: chance(0.5))
        project.enabled_module_names = MODULES.select { |m| chance(m == 'issue_tracking' ? 0.9 : 0.7) }
        project.trackers = @trackers
        project.save!
        project.set_parent!(pick(@projects)) if @projects.any? && chance(0.25)
        project.create_wiki(start_page: 'Wiki')
        project.boards.create!(name: 'Forum', description: 'talk')
        @projects << project
      end
    end

    def build_people(roles)
      @users = Array.new(n(12)) do |i|
        user = User.new(firstname: 'Prop', lastname: "User #{i}", language: 'en')
        user.login = "prop#{@seed}u#{i}"
        user.mail = "prop#{@seed}u#{i}@example.net"
        user.password = user.password_confirmation = 'prop-password'
        user.admin = i.zero? # one admin among them
        user.save!
        user
      end
      @groups = Array.new(n(3)) do |i|
        Group.create!(lastname: "Prop group #{@seed} #{i}", users: @users.drop(1).sample(1 + @rng.rand(4), random: @rng))
      end
      (@users.drop(1) + @groups).each do |principal|
        some(@projects, 3).each do |project|
          Member.create!(project: project, principal: principal,
                         role_ids: roles.sample(1 + @rng.rand(2), random: @rng).map(&:id))
        end
      end
    end

    def build_issues
      priority = IssuePriority.first
      status = IssueStatus.where(is_closed: false).first
      @issues = Array.new(n(150)) do
        title, body = text
        issue = Issue.new(project: pick(@projects), tracker: pick(@trackers), author: pick(@users), priority: priority,
                          status: status, subject: title[0, 200], description: body, is_private: chance(0.35))
        issue.assigned_to = pick(chance(0.5) ? @users : @groups) if chance(0.6)
        issue.save!(validate: false) # any assignee: Redmine's visibility reads assigned_to_id whatever made it
        issue
      end
    end

    def build_notes
      @issues.sample(n(90), random: @rng).each do |issue|
        title, body = text
        issue.reload.init_journal(pick(@users), "#{title}. #{body[0, 400]}")
        issue.private_notes = chance(0.35)
        issue.save!(validate: false)
      end
    end

    def build_content
      @projects.each do |project|
        (1 + @rng.rand(3)).times do |k|
          title, body = text
          page = WikiPage.new(wiki: project.wiki, title: "Page_#{k}_#{project.id}")
          page.content = WikiContent.new(text: "#{title}\n\n#{body}", author: pick(@users))
          page.save!
        end
        title, body = text
        News.create!(project: project, author: pick(@users), title: title[0, 60], description: body)
        title, body = text
        Message.create!(board: project.boards.first, author: pick(@users), subject: title[0, 200], content: body)
        title, body = text
        Document.create!(project: project, category: DocumentCategory.first, title: title[0, 60], description: body)
      end
    end

    # Projects archived or closed once their content exists: no document changes.
    def close_and_archive
      @projects.each do |project|
        roll = @rng.rand
        project.update_column(:status, Project::STATUS_ARCHIVED) if roll < 0.12
        project.update_column(:status, Project::STATUS_CLOSED) if roll >= 0.12 && roll < 0.24
      end
    end

    def change_issue(issue)
      return unless issue

      case @rng.rand(5)
      when 0 then issue.project = pick(@projects)
      when 1 then issue.is_private = !issue.is_private
      when 2 then issue.assigned_to = chance(0.5) ? pick(@users + @groups) : nil
      when 3 then issue.tracker = pick(@trackers)
      when 4 then issue.author = pick(@users)
      end
      issue.save!(validate: false)
    end
  end
end
