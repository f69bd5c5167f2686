# frozen_string_literal: true

module RedmineRag
  # The plugin's settings (Administration > Plugins > ragd semantic search),
  # read with their types and defaults. Stored by Redmine as strings.
  class Settings
    # Every option, with its default and what it does (the settings page shows the same words).
    DEFAULTS = {
      # host:port of `ragd serve`. $RAGD_ADDRESS, when set, is the default.
      'address' => ENV.fetch('RAGD_ADDRESS', '127.0.0.1:50051'),
      # ragd collection holding this Redmine's documents (one per Redmine instance).
      'collection' => 'redmine',
      # PEM file of the CA that signed ragd's certificate: turns TLS on. Empty: $RAGD_CA_FILE,
      # else plaintext (what ragd serves on loopback without TLS).
      'tls_ca_file' => '',
      # Client certificate and key (PEM files) for a ragd that asks for one (mutual TLS,
      # tls.client_ca_file). Empty: $RAGD_CLIENT_CERT_FILE / $RAGD_CLIENT_KEY_FILE, else none.
      'tls_client_cert_file' => '',
      'tls_client_key_file' => '',
      # Bearer token sent with every call (`ragd token create redmine --scopes search,write`).
      # Write-only: the settings page never shows it; an empty field keeps the stored one
      # (SettingPatch), `token_clear` removes it. Empty: $RAGD_TOKEN, else no token.
      'token' => '',
      # Seconds a search, a similar-issues or a duplicate lookup may take before
      # Redmine's own search answers instead (or the panel says it is unavailable).
      'search_timeout' => '1.5',
      # Seconds one indexing call may take (a batch of documents).
      'index_timeout' => '60',
      # What is indexed (and so answered by ragd on the search page).
      'index_types' => %w[issue journal wiki news message document],
      # Redmine's search page and /search.json answered by ragd.
      'search_enabled' => '1',
      # At most this many ragd hits feed the search page (its pages are cut from them),
      # and only passages at least this close to the question (cosine similarity;
      # keyword matches count whatever their similarity).
      'search_max_results' => '50',
      'search_min_score' => '0.25',
      # "Similar issues" panel on the issue page, with this many issues.
      'similar_enabled' => '1',
      'similar_count' => '5',
      # Duplicate suggestions on the new-issue form: at most this many, scoring at least min_score
      # (cosine similarity of the texts), once the subject has min_chars characters.
      'duplicates_enabled' => '1',
      'duplicates_count' => '5',
      'duplicates_min_score' => '0.5',
      'duplicates_min_chars' => '8',
      # "Ask" box on the search page for questions: ragd's answer with citations (needs a daemon
      # with an answer model, answer.model_url; without one the box stays hidden), and the
      # seconds an answer may take in all.
      'answer_enabled' => '1',
      'answer_timeout' => '60',
      # Projects (ids) neither indexed nor searched by ragd: Redmine's own search answers for them.
      'excluded_projects' => []
    }.freeze

    # Redmine search type -> ragd document types (a journal hit is its issue's result).
    SEARCH_TYPES = {
      'issues' => %w[issue journal], 'wiki_pages' => %w[wiki], 'news' => %w[news],
      'messages' => %w[message], 'documents' => %w[document]
    }.freeze

    def self.current = new(Setting.plugin_redmine_rag)

    def initialize(values)
      @values = DEFAULTS.merge((values || {}).to_h.transform_keys(&:to_s))
    end

    def [](key) = @values[key.to_s]
    def to_h = @values.dup

    def address = self['address'].to_s.strip.presence || DEFAULTS['address']
    def collection = self['collection'].to_s.strip.presence || DEFAULTS['collection']
    def search_timeout = positive_float('search_timeout')
    def index_timeout = positive_float('index_timeout')
    def stream_timeout = [index_timeout * 60, 3600.0].max

    def index_types = Array(self['index_types']).map(&:to_s) & Documents::TYPES
    def indexes?(type) = index_types.include?(type.to_s)

    def search_enabled? = flag('search_enabled')
    def similar_enabled? = flag('similar_enabled') && indexes?('issue')
    def duplicates_enabled? = flag('duplicates_enabled') && indexes?('issue')
    def answer_enabled? = flag('answer_enabled')
    def answer_timeout = positive_float('answer_timeout')

    def search_max_results = int('search_max_results', 1, 1000)
    def search_min_score = self['search_min_score'].to_f
    def similar_count = int('similar_count', 1, 50)
    def duplicates_count = int('duplicates_count', 1, 20)
    def duplicates_min_chars = int('duplicates_min_chars', 1, 200)
    def duplicates_min_score = self['duplicates_min_score'].to_f

    def excluded_project_ids = Array(self['excluded_projects']).map(&:to_i).reject(&:zero?).uniq.sort
    def project_enabled?(project_id) = !excluded_project_ids.include?(project_id.to_i)

    CONNECTION_KEYS = { 'token' => :token, 'tls_ca_file' => :ca_file, 'tls_client_cert_file' => :client_cert_file,
                        'tls_client_key_file' => :client_key_file }.freeze

    def token? = !self['token'].to_s.strip.empty?

    # The token, CA and client certificate settings that are set, as Ragd::Client keywords;
    # the ones left empty keep the gem's defaults ($RAGD_TOKEN, $RAGD_CA_FILE, ...). The gem
    # reads the files on its first call in each worker (never before a fork).
    # A client certificate without its key (or the reverse) is left out, with the CA: the
    # calls then fail (a ragd asking for a certificate refuses them), the search page falls
    # back and the status page shows why, instead of every page failing on a half setting.
    def connection_options
      options = CONNECTION_KEYS.filter_map do |setting, keyword|
        value = self[setting].to_s.strip
        [keyword, value] unless value.empty?
      end.to_h
      return options if options.key?(:client_cert_file) == options.key?(:client_key_file)

      RedmineRag.log(:error, 'the client certificate and its key go together: set both or neither')
      options.except(:client_cert_file, :client_key_file)
    end

    # Changing any of these builds a new client (see RedmineRag.client).
    def connection_key = [address, collection, index_timeout, connection_options]

    private

    def flag(key) = %w[1 true yes on].include?(self[key].to_s)

    def positive_float(key)
      value = self[key].to_f
      value.positive? ? value : DEFAULTS[key].to_f
    end

    def int(key, min, max)
      value = self[key].to_i
      value = DEFAULTS[key].to_i if value < min
      [value, max].min
    end
  end
end
