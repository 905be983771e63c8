//! The flags over the library's defaults: left out, given, and shown in
//! `--help`.

use super::*;
use clap::FromArgMatches;

fn parse(argv: &[&str]) -> (Args, ArgMatches) {
    let matches = command()
        .try_get_matches_from(argv)
        .expect("a valid command line");
    let args = Args::from_arg_matches(&matches).expect("matches Args");
    (args, matches)
}

#[test]
fn flags_left_out_keep_the_librarys_defaults() {
    let (args, matches) = parse(&["outbox-relay", "--database-url", "host=/tmp dbname=app"]);
    let config = relay_config(&args, &matches).unwrap();
    let defaults = RelayConfig::new(config.db.clone());
    assert_eq!(
        (config.batch_size, config.concurrency, config.lease),
        (defaults.batch_size, defaults.concurrency, defaults.lease)
    );
    assert_eq!(
        (config.poll_interval, config.shutdown_grace, config.listen),
        (
            defaults.poll_interval,
            defaults.shutdown_grace,
            defaults.listen
        )
    );
    assert_eq!(nats_config(&args).timeout, NatsConfig::default().timeout);
    let kafka = kafka_config(&args).unwrap();
    assert_eq!(
        kafka.bootstrap_servers,
        KafkaConfig::default().bootstrap_servers
    );
    let (redis, defaults) = (redis_config(&args), RedisConfig::default());
    assert_eq!(
        (redis.url, redis.maxlen, redis.timeout),
        (defaults.url, defaults.maxlen, defaults.timeout)
    );
    let (rabbitmq, defaults) = (rabbitmq_config(&args), RabbitMqConfig::default());
    assert_eq!(
        (rabbitmq.url, rabbitmq.exchange, rabbitmq.routing_key_prefix),
        (defaults.url, defaults.exchange, defaults.routing_key_prefix)
    );
    assert_eq!(rabbitmq.timeout, defaults.timeout);
}

#[test]
fn a_flag_given_wins() {
    let argv = [
        "outbox-relay",
        "--database-url",
        "host=/tmp dbname=app",
        "--batch-size",
        "7",
        "--lease",
        "2m",
        "--nats-timeout",
        "9s",
        "--redis-maxlen",
        "1000",
        "--rabbitmq-exchange",
        "events",
        "--rabbitmq-timeout",
        "3s",
    ];
    let (args, matches) = parse(&argv);
    let config = relay_config(&args, &matches).unwrap();
    assert_eq!(
        (config.batch_size, config.lease),
        (7, Duration::from_secs(120))
    );
    assert_eq!(nats_config(&args).timeout, Duration::from_secs(9));
    assert_eq!(redis_config(&args).maxlen, Some(1000));
    let rabbitmq = rabbitmq_config(&args);
    assert_eq!(
        (rabbitmq.exchange.as_str(), rabbitmq.timeout),
        ("events", Duration::from_secs(3))
    );
    assert_eq!(rabbitmq.url, RabbitMqConfig::default().url);
}

#[test]
fn help_shows_the_defaults_the_library_applies() {
    let help = command().render_long_help().to_string();
    let relay = RelayConfig::new(tokio_postgres::Config::new());
    for shown in [
        format!("[default: {}]", relay.batch_size),
        format!("[default: {}]", humantime::format_duration(relay.lease)),
        format!("[default: {}]", KafkaConfig::default().bootstrap_servers),
    ] {
        assert!(help.contains(&shown), "--help lacks {shown}:\n{help}");
    }
}
