"""Test fakes (e.g. a local stand-in for the OpenAI API)."""
