# frozen_string_literal: true

# The README's screenshots, taken by headless Chromium (Debian's chromium,
# chromedriver and ruby-selenium-webdriver) from the running demo:
#   ruby scripts/redmine/screenshots.rb URL OUTPUT_DIR
# (scripts/redmine/screenshots.sh brings the demo up and runs this.)
require 'selenium-webdriver'
require 'fileutils'

url, out = ARGV
abort 'usage: screenshots.rb URL OUTPUT_DIR' unless url && out
FileUtils.mkdir_p(out)
PASSWORD = ENV.fetch('DEMO_PASSWORD', 'ragd-demo')

options = Selenium::WebDriver::Chrome::Options.new
%w[--headless --no-sandbox --disable-dev-shm-usage --disable-gpu --hide-scrollbars --window-size=1280,900
   --force-device-scale-factor=1 --lang=en-US].each { |a| options.add_argument(a) }
driver = Selenium::WebDriver.for(:chrome, options: options)
wait = Selenium::WebDriver::Wait.new(timeout: 120, interval: 0.2)

def shot(driver, path)
  driver.save_screenshot(path)
  puts "#{path} (#{File.size(path)} bytes)"
end

def log_in(driver, wait, url, login, password)
  driver.navigate.to("#{url}/logout") rescue nil # rubocop:disable Style/RescueModifier
  driver.manage.delete_all_cookies
  driver.navigate.to("#{url}/login")
  driver.find_element(id: 'username').send_keys(login)
  driver.find_element(id: 'password').send_keys(password)
  driver.find_element(id: 'login-submit').click
  wait.until { driver.find_elements(id: 'loggedas').any? }
end

begin
  log_in(driver, wait, url, 'bob', PASSWORD)

  # 1. Redmine's search page, ranked by ragd within bob's permissions, with the
  # Ask box's answer (a question) once it is written (or gone: no model server).
  q = 'how do readers find books in a catalogue?'
  driver.navigate.to("#{url}/search?q=#{URI.encode_www_form_component(q)}&issues=1&wiki_pages=1&news=1&messages=1&documents=1")
  wait.until { driver.find_elements(id: 'redmine-rag-search-notice').any? }
  wait.until do
    driver.find_elements(id: 'redmine-rag-answer').empty? ||
      driver.find_elements(css: '#redmine-rag-answer.redmine-rag-answer-done').any?
  end
  shot(driver, File.join(out, 'search.png'))

  # 2. An issue page with its similar issues (loaded after the page).
  driver.navigate.to("#{url}/issues/16")
  wait.until { driver.find_elements(css: '#redmine-rag-similar table.redmine-rag-similar-list').any? }
  driver.execute_script("document.getElementById('redmine-rag-similar').scrollIntoView({block: 'center'})")
  shot(driver, File.join(out, 'similar_issues.png'))

  # 3. Duplicate suggestions while a new issue's subject is typed.
  driver.navigate.to("#{url}/projects/library/issues/new")
  subject = driver.find_element(id: 'issue_subject')
  'Subject headings for the library catalogue'.each_char { |c| subject.send_keys(c) }
  wait.until { driver.find_elements(css: '#redmine-rag-duplicates li').any? }
  shot(driver, File.join(out, 'duplicates.png'))

  # 4. The admin status page.
  log_in(driver, wait, url, 'admin', ENV.fetch('DEMO_ADMIN_PASSWORD', 'admin-demo'))
  driver.navigate.to("#{url}/admin/redmine_rag")
  wait.until { driver.find_elements(id: 'redmine-rag-daemon').any? }
  shot(driver, File.join(out, 'status.png'))
ensure
  driver.quit
end
