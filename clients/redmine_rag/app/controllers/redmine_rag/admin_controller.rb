# frozen_string_literal: true

module RedmineRag
  # Administration > ragd semantic search: ragd's health and model, documents
  # per project and type against Redmine's, refused documents and the backlog.
  class AdminController < ApplicationController
    layout 'admin'
    self.main_menu = false
    before_action :require_admin

    def show
      @settings = RedmineRag.settings
      @report = StatusReport.new.load
    end
  end
end
