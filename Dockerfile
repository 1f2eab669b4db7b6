# carenotes web image: gunicorn serving the Django app; configured only by environment.

# The dashboard's browser libraries, from npm with the committed lock file (package.json);
# only node_modules/ goes on to the image, where collectstatic gathers them under vendor/.
FROM node:20-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=carenotes.settings DJANGO_STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY pyproject.toml README.md ./
COPY carenotes ./carenotes
COPY tenants ./tenants
COPY audit ./audit
COPY stats ./stats
COPY dashboard ./dashboard
COPY --from=assets /assets/node_modules ./node_modules
COPY tools ./tools
COPY manage.py gunicorn.conf.py locustfile.py ./
# EXTRAS="[load]" builds the locust image of docker-compose.yml from the same code.
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS}" \
 && DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput --verbosity 0 \
 && useradd --system --no-create-home carenotes
# .data holds the seed's demo credentials (a volume shared with the locust service).
RUN mkdir -p /app/.data && chown carenotes /app/.data
USER carenotes
EXPOSE 8000
CMD ["gunicorn", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "carenotes.wsgi"]
