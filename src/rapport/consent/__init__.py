"""Permission: subscriptions per channel and topic, the consent log, double opt-in, unsubscribe."""
