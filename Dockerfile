# The web app under gunicorn. Used by docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings but no database or cache.
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input --verbosity 0

RUN useradd --system --uid 10001 app && mkdir -p /app/var && chown -R app /app/var
USER app

EXPOSE 8000
ENV BIND=0.0.0.0:8000
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
