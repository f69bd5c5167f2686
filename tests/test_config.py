import pytest

from ragd.config import Config, ConfigError, load_config


def test_defaults_match_the_design():
    cfg = load_config(env={})
    assert cfg.data_dir == "./var/ragd"
    assert cfg.server.listen == "127.0.0.1:50051"
    assert (cfg.chunking.size, cfg.chunking.overlap) == (0, -1)  # the mode's defaults
    assert cfg.model.name == "all-MiniLM-L6-v2"


def test_layers_apply_in_order(tmp_path):
    toml = tmp_path / "ragd.toml"
    toml.write_text('data_dir = "/from/toml"\n[server]\nlisten = "0.0.0.0:1"\ngrace_s = 3\n[model]\ndevice = "cpu"\n')
    env = {"RAGD_SERVER_LISTEN": "127.0.0.1:2", "RAGD_MODEL_THREADS": "3"}
    cfg = load_config(toml, env=env, overrides={"server.listen": "127.0.0.1:3", "data_dir": None})
    assert cfg.data_dir == "/from/toml"            # file beats default; None flag ignored
    assert cfg.server.grace_s == 3.0               # coerced to the default's type
    assert cfg.model.device == "cpu"
    assert cfg.model.threads == 3                  # env beats default
    assert cfg.server.listen == "127.0.0.1:3"      # flag beats env beats file


def test_config_file_from_environment(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[chunking]\nsize = 800\n")
    assert load_config(env={"RAGD_CONFIG": str(toml)}).chunking.size == 800


@pytest.mark.parametrize("env,message", [
    ({"RAGD_NOPE": "1"}, "RAGD_NOPE: unknown option"),
    ({"RAGD_MODEL_THREADS": "many"}, "RAGD_MODEL_THREADS: cannot use 'many' as int"),
    ({"RAGD_MODEL_DEVICE": "tpu"}, "model.device"),
    ({"RAGD_SERVER_LISTEN": "nowhere"}, "server.listen"),
    ({"RAGD_CHUNKING_SIZE": "100", "RAGD_CHUNKING_OVERLAP": "600"}, "chunking"),
])
def test_bad_values_name_the_option(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(env=env)


def test_unknown_key_in_file_is_named(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[server]\nlisen = 'x'\n")
    with pytest.raises(ConfigError, match="server.lisen: unknown option"):
        load_config(toml, env={})


def test_every_option_is_documented():
    from ragd.config import iter_options
    assert all(doc for _, _, _, doc in iter_options(Config()))


def test_every_ragd_variable_the_project_uses_is_accepted_by_the_daemon():
    # Tests, scripts and docs set RAGD_* variables in environments a daemon
    # inherits; the daemon refuses unknown ones, so each must be an option (or
    # one of the documented non-options). Prefixes in prose ("RAGD_INDEX_*")
    # and CMake options (-DRAGD_BUILD_...) are not environment variables.
    import re
    import subprocess

    from conftest import REPO

    from ragd.config import NOT_OPTIONS, Config, env_name, iter_options
    known = {env_name(s, k) for s, k, _, _ in iter_options(Config())} | NOT_OPTIONS
    cmake = set(re.findall(r"option\((RAGD_\w+)", (REPO / "CMakeLists.txt").read_text()))
    refused_on_purpose = {"RAGD_NOPE"}  # test_bad_values_name_the_option
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    used = {}
    for name in files:
        path = REPO / name
        if path.suffix in {".py", ".rb", ".sh", ".md", ".toml", ".yml", ".yaml", ".erb", ""} and path.is_file():
            for var in re.findall(r"\bRAGD_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
                used.setdefault(var, name)
    unknown = {v: f for v, f in used.items() if v not in known | cmake | refused_on_purpose}
    assert not unknown, f"RAGD_* names the daemon would refuse: {unknown}"


def test_the_clients_address_variable_does_not_stop_the_daemon():
    cfg = load_config(env={"RAGD_ADDRESS": "127.0.0.1:50051", "RAGD_SERVER_LISTEN": "127.0.0.1:0"})
    assert cfg.server.listen == "127.0.0.1:0"


def test_keyword_cjk_by_collection_is_parsed_and_bad_items_name_the_option():
    from ragd.config import ConfigError, keyword_cjk_by_collection, load_config
    cfg = load_config(env={"RAGD_SEARCH_KEYWORD_CJK_BY_COLLECTION": " wiki_ja=bigram, legacy=off "})
    assert keyword_cjk_by_collection(cfg.search) == {"wiki_ja": "bigram", "legacy": "off"}
    for bad in ("wiki", "wiki=sudachi", "../x=off"):
        with pytest.raises(ConfigError, match="search.keyword_cjk_by_collection"):
            load_config(env={"RAGD_SEARCH_KEYWORD_CJK_BY_COLLECTION": bad})
