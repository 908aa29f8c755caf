"""The catalogue for AI agents: a Model Context Protocol server (contract §13).

``server`` builds the tools, resources and prompt over the core's use cases;
``http`` serves them at ``/mcp`` (streamable HTTP, bearer authentication,
RFC 9728 metadata) inside the Litestar app; ``stdio`` serves them to a local
assistant (``fleetprompt mcp``). Nothing here imports the SDK at package import.
"""
