"""The daemon API as its clients see it: wire shapes, the clients, the JSON views."""
