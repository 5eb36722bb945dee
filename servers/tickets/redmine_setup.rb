# Prepares a fresh Redmine instance for Portcullis (run with `bin/rails runner THIS_FILE API_KEY_FILE`).
#
# Idempotent: default data, settings, the service user, its memberships and the projects are created only when
# missing. Writes the service user's API key to API_KEY_FILE (mode 0600); never prints it.

require 'securerandom'

key_file = ARGV.fetch(0)

Redmine::DefaultData::Loader.load('en') if Redmine::DefaultData::Loader.no_data?

Setting.rest_api_enabled = '1'
Setting.login_required = '1' # nothing is readable without an API key

# The built-in administrator keeps no known password: the instance is driven through the service user.
admin = User.find_by(login: 'admin')
if admin&.must_change_passwd?
  admin.password = admin.password_confirmation = SecureRandom.hex(24)
  admin.must_change_passwd = false
  admin.save!
end

bot = User.find_by(login: 'portcullis-bot') || User.new
if bot.new_record?
  bot.login = 'portcullis-bot'
  bot.firstname = 'Portcullis'
  bot.lastname = 'Bot'
  bot.mail = 'portcullis-bot@example.com'
  bot.password = bot.password_confirmation = SecureRandom.hex(24)
  bot.admin = false
  bot.save!
end

developer = Role.find_by!(name: 'Developer')
[%w[ads Ads], %w[platform Platform]].each do |identifier, name|
  project = Project.find_by(identifier: identifier) ||
            Project.create!(identifier: identifier, name: name, is_public: false,
                            tracker_ids: Tracker.pluck(:id), enabled_module_names: %w[issue_tracking])
  unless Member.exists?(project_id: project.id, user_id: bot.id)
    Member.create!(project: project, principal: bot, role_ids: [developer.id])
  end
end

File.open(key_file, File::WRONLY | File::CREAT | File::TRUNC, 0o600) { |file| file.write(bot.api_key) }
File.chmod(0o600, key_file)
