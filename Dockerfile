# The service's image: the API (gunicorn) and the Celery worker run from it (see
# docker-compose.yml). Production settings; every setting comes from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# The docs' assets (Swagger UI, Redoc) and the admin's, served by the app itself (WhiteNoise).
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 app && mkdir -p -m 0700 /app/data && chown -R app /app
USER app
ENV DATA_DIR=/app/data
EXPOSE 8000
CMD ["gunicorn", "--config", "config/gunicorn.conf.py", "config.wsgi"]
