"""The application shell: settings, wiring, the local Neo4j, the pipeline runner, ingestion, the CLI, the API and the demo.

It builds the domain's collaborators from settings and is the only reader of the environment.
"""
