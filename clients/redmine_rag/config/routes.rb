# frozen_string_literal: true

# Redmine draws this inside its own routes.
get 'issues/:id/similar', to: 'redmine_rag/similar_issues#show', as: 'redmine_rag_similar_issues'
get 'redmine_rag/duplicates', to: 'redmine_rag/duplicates#index', as: 'redmine_rag_duplicates'
get 'admin/redmine_rag', to: 'redmine_rag/admin#show', as: 'redmine_rag_admin'
get 'redmine_rag/answer', to: 'redmine_rag/answers#show', as: 'redmine_rag_answer'
