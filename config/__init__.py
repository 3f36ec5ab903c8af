"""Settings, URLs, the WSGI entry point and the gunicorn configuration: the top floor, which may import every app."""
