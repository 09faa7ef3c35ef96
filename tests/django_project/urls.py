from django.urls import path

from tests.django_project.tickets.views import sell_ticket

urlpatterns = [path("tickets/", sell_ticket)]
