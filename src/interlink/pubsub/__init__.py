"""The Pub/Sub API surface: the platform's ``eventbus.v1.PubSub`` gRPC service over the org's event bus."""
