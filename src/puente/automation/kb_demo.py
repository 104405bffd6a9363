"""The demo shop's knowledge base (Tienda La Esquina, a corner shop in Bogotá): a dozen
Spanish entries and the bot switched on, so that a newcomer can ask from the sandbox's
phone page and get an answer, then ask for a person and see the handoff."""

from __future__ import annotations

from sqlalchemy.orm import Session

from puente.accounts.models import Workspace
from puente.automation.kb import BotSettings, check_entry, do_create_entry, do_save_bot_settings

DEMO_ENTRIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "¿A qué hora abren?",
            "¿Abren hoy?",
            "¿Cuál es el horario de atención?",
            "¿Hasta qué hora están abiertos?",
            "¿A qué hora cierran?",
            "¿Abren los domingos y festivos?",
        ),
        "Abrimos de lunes a sábado de 8:00 a 20:00, y domingos y festivos de 9:00 a 14:00.",
    ),
    (
        (
            "¿Hacen domicilios?",
            "¿Hacen envíos a domicilio?",
            "¿Me lo pueden llevar a la casa?",
            "¿Hacen entregas en el barrio?",
        ),
        "Sí, llevamos tu pedido a domicilio en el barrio y alrededores, de 9:00 a 19:00. "
        "Llega en 30 a 60 minutos.",
    ),
    (
        (
            "¿Cuánto cuesta el domicilio?",
            "¿Cuánto vale el envío?",
            "¿El envío es gratis?",
        ),
        "El domicilio cuesta $4.000 y es gratis en compras desde $50.000.",
    ),
    (
        (
            "¿Qué medios de pago aceptan?",
            "¿Aceptan tarjeta de crédito?",
            "¿Puedo pagar con Nequi o Daviplata?",
            "¿Reciben transferencias?",
        ),
        "Aceptamos efectivo, tarjetas débito y crédito, Nequi, Daviplata y transferencia bancaria.",
    ),
    (
        (
            "¿Puedo devolver un producto?",
            "¿Cómo hago una devolución?",
            "¿Aceptan cambios?",
            "¿Puedo cambiar un producto?",
        ),
        "Puedes cambiar o devolver un producto en los 8 días siguientes a la compra, con la "
        "factura y el producto sin abrir.",
    ),
    (
        (
            "¿Dónde están ubicados?",
            "¿Cuál es la dirección de la tienda?",
            "¿Dónde queda la tienda?",
        ),
        "Estamos en la Calle 45 # 13-20, barrio Palermo, Bogotá: en la esquina frente al parque.",
    ),
    (
        (
            "¿Cómo hago un pedido?",
            "¿Puedo pedir por WhatsApp?",
        ),
        "Escríbenos por aquí lo que necesitas y la dirección de entrega; te confirmamos el "
        "total y la hora de llegada.",
    ),
    (
        (
            "¿Cuánto se demora el pedido?",
            "Mi pedido no ha llegado",
            "¿Ya viene mi pedido?",
        ),
        "Los domicilios llegan en 30 a 60 minutos. Si el tuyo tarda más, escribe «quiero "
        "hablar con una persona» y alguien del equipo lo revisa.",
    ),
    (
        (
            "¿Tienen frutas y verduras?",
            "¿Venden pan fresco?",
            "¿Tienen productos frescos?",
        ),
        "Sí: frutas y verduras frescas todos los días, pan recién horneado desde las 7:00 y "
        "lácteos.",
    ),
    (
        (
            "¿Dan factura electrónica?",
            "¿Me pueden facturar a nombre de mi empresa?",
        ),
        "Sí, emitimos factura electrónica: envíanos el nombre o la razón social, el NIT o la "
        "cédula y un correo.",
    ),
    (
        (
            "¿Tienen promociones?",
            "¿Hay descuentos esta semana?",
            "¿Cuáles son las ofertas?",
        ),
        "Los martes hay 2x1 en frutas y los jueves 10 % de descuento en lácteos.",
    ),
    (
        (
            "¿Tienen parqueadero?",
            "¿Dónde puedo parquear?",
        ),
        "Tenemos dos cupos frente a la tienda y hay un parqueadero público a media cuadra.",
    ),
)


def seed_demo_knowledge_base(session: Session, workspace: Workspace) -> None:
    for phrasings, answer in DEMO_ENTRIES:
        data = check_entry(language="es", phrasings=list(phrasings), answer=answer)
        do_create_entry(session, workspace.id, data)
    do_save_bot_settings(session, workspace, BotSettings(enabled=True))
